"""Bench 1b: instructions the agent's thread runs per SDK operation, counted by callgrind.

    bench/run-sdk.sh --instructions            # builds what it needs, then runs this
    bench/.venv/bin/python bench/sdk_instructions.py [--calls 2000] [--only op,op]

Why: on this 2-core virtual machine, wall and CPU times of the same loop move by up to 2x from one
round to the next (bench/README.md, section 1), so a change worth 10% cannot be told apart from the
noise by timing it. The number of instructions the agent's thread executes per operation is
exact and repeatable (to a few per mille), and it is what the SDK controls; the timed bench
(`sdk_hot_path.py`) stays the judge of the bar. Each operation runs in its own process under
`valgrind --tool=callgrind`, counting only the loop (see `sdk_ops.py`), against a release Kestrel;
the table gives instructions per operation and the counted Rust and C allocations. Needs
valgrind (present on this project's machines; the script says so if it is missing).
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from _servers import BENCH, clean_env, machine, start_kestrel

LABEL = {
    "noop": "the loop alone (no SDK call)",
    "trace_run_empty": "`with trace_run(meta): pass`",
    "message_in": "`Message(role, content)` (500 chars), built and freed",
    "message_out": "`Message(...)` out (500 chars, model, provider, tokens, cost)",
    "tool_execution": "`ToolExecution(...)` (arguments, result dict)",
    "log_built_message": "`log(message)` of a built message",
    "call_in_open_trace": "one call of bench 1: the three items built and logged",
    "call_with_trace_run": "one call of bench 1 with its own `trace_run`",
}


def count(url: str, op: str, calls: int) -> "tuple[float, float]":
    """Instructions and malloc calls per operation on the main thread."""
    with tempfile.TemporaryDirectory(prefix="callgrind-") as tmp:
        out = Path(tmp) / "cg.out"
        cmd = ["valgrind", "--tool=callgrind", "--separate-threads=yes", "--toggle-collect=map_next",
               f"--callgrind-out-file={out}", sys.executable, str(BENCH / "sdk_ops.py"), url, op, str(calls)]
        # A fixed hash seed: with the interpreter's per-process seed, dict work (keyword arguments)
        # moved the counts by up to 3% between runs of the same code.
        env = {**clean_env(), "PYTHONHASHSEED": "0"}
        done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1800)
        if done.returncode != 0:
            tail = "\n".join(done.stderr.strip().splitlines()[-15:])
            raise SystemExit(f"{op}: valgrind or the operation failed (exit {done.returncode}):\n{tail}")
        main = Path(f"{out}-01").read_text()
    total = int(re.search(r"^summary: (\d+)", main, re.M).group(1))  # type: ignore[union-attr]
    return total / calls, mallocs(main) / calls


def mallocs(profile: str) -> int:
    """Calls to `malloc` recorded in a callgrind profile (the `calls=` lines under `cfn=malloc`)."""
    names = dict(re.findall(r"^c?fn=\((\d+)\) (.+)$", profile, re.M))
    ids = {k for k, v in names.items() if v.strip() == "malloc"}
    n, callee = 0, None
    for line in profile.splitlines():
        m = re.match(r"^cfn=\((\d+)\)", line)
        if m:
            callee = m.group(1)
        elif line.startswith("calls=") and callee in ids:
            n += int(line.split("=")[1].split()[0])
    return n


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=2000)
    ap.add_argument("--only", default=",".join(LABEL))
    args = ap.parse_args()
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not installed: `apt-get install valgrind` (Debian's package) to count instructions")
    ops = [op for op in LABEL if op in args.only.split(",")]
    kestrel = start_kestrel()
    rows = []
    try:
        for op in ops:
            rows.append((op, *count(kestrel.url, op, args.calls)))
            print(f"  counted {op}", file=sys.stderr, flush=True)
    finally:
        kestrel.stop()
    print(f"SDK instructions per operation (agent thread, callgrind, {args.calls:,} calls each)")
    print(f"machine: {machine()}")
    print()
    print("| operation | instructions | malloc calls |")
    print("| --- | ---: | ---: |")
    for op, instructions, allocs in rows:
        print(f"| {LABEL[op]} | {instructions:,.0f} | {allocs:.1f} |")


if __name__ == "__main__":
    main()
