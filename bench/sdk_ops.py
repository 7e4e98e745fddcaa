"""One SDK operation, repeated inside ``map`` so that callgrind can count just the loop.

    python bench/sdk_ops.py URL OP N

Run by ``bench/sdk_instructions.py`` under ``valgrind --tool=callgrind --toggle-collect=map_next``:
the operations are called from the builtin ``map``, so the instructions counted are those of the
loop alone (not the imports, ``configure``, the warm-up or the final ``flush``). See that file.
"""

from __future__ import annotations

import sys

import caribou
from caribou import Message, ToolExecution, log, trace_run

from sdk_worker import ANSWER, ARGS, MODEL, RESULT, USER

META = {"datapoint_id": "bench"}
BUILT = Message(role="user", content=USER)


def noop(i: int) -> None:
    pass


def trace_run_empty(i: int) -> None:
    with trace_run(META):
        pass


def message_in(i: int) -> None:
    Message(role="user", content=USER)


def message_out(i: int) -> None:
    Message(role="assistant", content=ANSWER, model=MODEL, provider="openai", input_tokens=120,
            output_tokens=i, cost_usd=0.0012)


def tool_execution(i: int) -> None:
    ToolExecution(name="search", call_id="call_1", arguments=ARGS, result=RESULT, requestor="agent")


def log_built_message(i: int) -> None:
    log(BUILT)


def call_in_open_trace(i: int) -> None:
    log(Message(role="user", content=USER))
    log(Message(role="assistant", content=ANSWER, model=MODEL, provider="openai", input_tokens=120,
                output_tokens=i, cost_usd=0.0012))
    log(ToolExecution(name="search", call_id="call_1", arguments=ARGS, result=RESULT, requestor="agent"))


def call_with_trace_run(i: int) -> None:
    with trace_run(META):
        call_in_open_trace(i)


OPS = {f.__name__: f for f in (noop, trace_run_empty, message_in, message_out, tool_execution,
                                 log_built_message, call_in_open_trace, call_with_trace_run)}


def main() -> None:
    url, op, n = sys.argv[1], OPS[sys.argv[2]], int(sys.argv[3])
    caribou.configure(project="bench", phase="prod", endpoint=url)
    block = trace_run(META)
    block.__enter__()  # the operations that log need a current trace
    for i in range(200):
        op(i)
    caribou.flush(timeout=60)
    for _ in map(op, range(n)):
        pass
    block.__exit__(None, None, None)
    caribou.flush(timeout=60)
    if caribou.stats()["dropped"]:
        raise SystemExit(f"dropped {caribou.stats()['dropped']} records")


if __name__ == "__main__":
    main()
