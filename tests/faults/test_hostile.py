"""Hostile input against a real Kestrel with API keys on: no route answers without a valid key, no
input makes it answer 5xx or stop.

The hostile bodies are the fuzz seed corpus (fuzz/corpus/ingest_decode: huge strings, deep JSON,
many tags, invalid UTF-8, NaN/inf, ids colliding across projects, ...), sent over HTTP as a client
would, plain and gzip-compressed, plus a decompression bomb; the hostile queries are
fuzz/corpus/query_parse. Property-based API testing against the OpenAPI document is
scripts/schemathesis.sh (bounded; a smoke run of it is in test_schemathesis_smoke when
schemathesis is installed).
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Tuple

import pytest

from faultkit import REPO, Kestrel

KEY = "fault-suite-key"
CORPUS = REPO / "fuzz" / "corpus"


@pytest.fixture
def guarded(tmp_path: Path) -> Iterator[Kestrel]:
    k = Kestrel(tmp_path / "kestrel-data", args=["--api-key", KEY])
    k.start()
    try:
        yield k
    finally:
        k.stop()


def call(
    k: Kestrel,
    method: str,
    path: str,
    body: Optional[bytes] = None,
    key: Optional[str] = KEY,
    headers: Optional[Dict[str, str]] = None,
) -> Tuple[int, bytes]:
    req = urllib.request.Request(k.url + path, data=body, method=method)
    if key is not None:
        req.add_header("Authorization", f"Bearer {key}")
    if body is not None:
        req.add_header("Content-Type", "application/json")
    for name, value in (headers or {}).items():
        req.add_header(name, value)
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def routes(k: Kestrel) -> List[Tuple[str, str]]:
    status, body = call(k, "GET", "/api/v1/openapi.json")
    assert status == 200
    spec = json.loads(body)
    out = []
    for path, ops in spec["paths"].items():
        concrete = path
        for name in ("name", "run_id", "trace_id", "id", "step"):
            concrete = concrete.replace("{" + name + "}", "1" if name == "step" else "x")
        assert "{" not in concrete, f"unhandled path parameter in {path}"
        for method in ops:
            if method.lower() in ("get", "post", "put", "patch", "delete"):
                out.append((method.upper(), concrete))
    return out


def test_no_route_reads_or_writes_without_a_valid_key(guarded: Kestrel) -> None:
    checked = 0
    for method, path in routes(guarded):
        if path == "/healthz":
            continue
        body = b"{}" if method != "GET" else None
        for key in (None, "wrong-key", KEY + "x", ""):
            status, text = call(guarded, method, path, body, key=key)
            assert status == 401, f"{method} {path} with key {key!r}: {status} {text[:200]!r}"
            checked += 1
    assert checked > 40
    # With the key, the same routes answer (never a 5xx).
    for method, path in routes(guarded):
        status, text = call(guarded, method, path, b"{}" if method != "GET" else None)
        assert status < 500, f"{method} {path}: {status} {text[:300]!r}"


def test_hostile_ingest_bodies_never_make_kestrel_fail(guarded: Kestrel) -> None:
    seeds = sorted((CORPUS / "ingest_decode").iterdir())
    assert seeds
    for seed in seeds:
        data = seed.read_bytes()
        for encoded, headers in ((data, {}), (gzip.compress(data), {"Content-Encoding": "gzip"})):
            status, text = call(guarded, "POST", "/api/v1/ingest", encoded, headers=headers)
            assert status < 500, f"{seed.name} ({headers}): {status} {text[:300]!r}"
            if status >= 400:
                err = json.loads(text)["error"]
                assert err["code"] and err["message"], text
    # A decompression bomb: 200 MiB of zeros in ~200 KiB of gzip is refused (413), not swallowed.
    bomb = gzip.compress(b"0" * (200 << 20), compresslevel=9)
    status, _ = call(guarded, "POST", "/api/v1/ingest", bomb, headers={"Content-Encoding": "gzip"})
    assert status == 413, status
    status, _ = call(guarded, "GET", "/healthz", key=None)
    assert status == 200, "kestrel is still up"


def test_ids_colliding_across_projects_are_refused(guarded: Kestrel) -> None:
    """The same trace id opened under two projects, and a record id reused for another record:
    each batch is refused with a 409 that names what collides, and nothing of it is stored (a
    trace never joins two projects, the first copy of a record is the one kept)."""
    seed = (CORPUS / "ingest_decode" / "seed-ids-collide-across-projects").read_bytes()
    for _ in range(2):
        status, text = call(guarded, "POST", "/api/v1/ingest", seed)
        assert status == 409, (status, text)
        err = json.loads(text)["error"]
        assert err["code"] == "conflict", text
        assert "proj-a" in err["message"] and "proj-b" in err["message"], text
    status, _ = call(guarded, "GET", "/api/v1/traces/trc_shared")
    assert status == 404, "nothing of the refused batch is stored"
    # Once filed under proj-a, the trace stays there: proj-b's opening is refused.
    records = json.loads(seed)["records"]
    half = len(records) // 2
    first = json.dumps({"records": records[:half]}).encode()
    second = json.dumps({"records": records[half:]}).encode()
    status, text = call(guarded, "POST", "/api/v1/ingest", first)
    assert status == 200, text
    status, text = call(guarded, "POST", "/api/v1/ingest", second)
    assert status == 409, (status, text)
    status, body = call(guarded, "GET", "/api/v1/traces/trc_shared")
    assert status == 200
    trace = json.loads(body)
    assert trace["project"] == "proj-a"
    assert len(trace["items"]) == sum(1 for r in records[:half] if r["kind"] == "item")
    status, _ = call(guarded, "GET", "/api/v1/projects/proj-b")
    assert status == 404
    seed = (CORPUS / "ingest_decode" / "seed-record-id-reused-other-trace").read_bytes()
    status, text = call(guarded, "POST", "/api/v1/ingest", seed)
    assert status == 409, (status, text)
    assert json.loads(text)["error"]["code"] == "conflict"


def test_hostile_queries_get_4xx_not_5xx(guarded: Kestrel) -> None:
    for seed in sorted((CORPUS / "query_parse").iterdir()):
        q = seed.read_bytes().decode("utf-8", errors="replace")
        for path in ("/api/v1/traces", "/api/v1/stats"):
            status, text = call(guarded, "GET", path + "?" + urllib.parse.urlencode({"q": q}))
            assert status < 500, f"{seed.name} on {path}: {status} {text[:300]!r}"
    # Raw invalid UTF-8 in the query string, and absurd parameters.
    for raw in ("q=%FF%FE", "limit=-1", "limit=99999999999999999999", "cursor=%00", "since=NaN", "step=1e999"):
        status, text = call(guarded, "GET", "/api/v1/traces?" + raw)
        assert status < 500, f"{raw}: {status} {text[:300]!r}"


@pytest.mark.skipif(shutil.which("schemathesis") is None and not (REPO / ".venv/bin/schemathesis").exists(),
                    reason="schemathesis is not installed (scripts/schemathesis.sh installs it)")
def test_schemathesis_smoke() -> None:
    """A bounded schemathesis run (scripts/schemathesis.sh) against a fresh Kestrel: no 5xx."""
    env = dict(os.environ, SCHEMATHESIS_MAX_EXAMPLES="10", SCHEMATHESIS_TIME_LIMIT="60")
    proc = subprocess.run(
        ["bash", str(REPO / "scripts" / "schemathesis.sh")], env=env, capture_output=True, text=True, timeout=150
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
