"""The peers' local sink: a tiny HTTP server that accepts what the OpenTelemetry and Langfuse SDKs
post and answers 200 at once, counting the spans it received.

    python bench/sink.py PORT        # serves 127.0.0.1:PORT until killed

- ``POST /v1/traces`` (OTLP/HTTP, the OpenTelemetry exporter) and ``POST /api/public/otel/v1/traces``
  (the Langfuse SDK exports OTLP there): the body (protobuf, or JSON; gzip or not) is parsed with
  ``opentelemetry-proto`` to count spans, so the harness can tell spans dropped by an SDK from
  spans delivered.
- any other ``POST`` (e.g. Langfuse's ``/api/public/ingestion`` for scores) answers ``{}``;
  any ``GET`` answers ``{}`` too (Langfuse may ask for the project).
- ``GET /_count`` answers ``{"spans": N, "requests": M}``; ``POST /_reset`` zeroes them.

It parses each body on its own thread (``ThreadingHTTPServer``): the SDK under test never waits
on the sink's bookkeeping longer than one parse. HTTP/1.1 keep-alive, as real collectors speak.
"""

from __future__ import annotations

import gzip
import json
import sys
import threading
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

_lock = threading.Lock()
_counts = {"spans": 0, "requests": 0}


def _count_spans(body: bytes, content_type: str) -> int:
    if "json" in content_type:
        doc = json.loads(body or b"{}")
        return sum(
            len(ss.get("spans", []))
            for rs in doc.get("resourceSpans", [])
            for ss in rs.get("scopeSpans", [])
        )
    req = ExportTraceServiceRequest()
    req.ParseFromString(body)
    return sum(len(ss.spans) for rs in req.resource_spans for ss in rs.scope_spans)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base's name
        pass

    def _answer(self, status: int, body: bytes, content_type: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        if self.path == "/_count":
            with _lock:
                self._answer(200, json.dumps(_counts).encode())
            return
        self._answer(200, b"{}")

    def do_POST(self) -> None:  # noqa: N802
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        if self.path == "/_reset":
            with _lock:
                _counts.update(spans=0, requests=0)
            self._answer(200, b"{}")
            return
        encoding = (self.headers.get("Content-Encoding") or "").lower()
        if encoding == "gzip":
            body = gzip.decompress(body)
        elif encoding == "deflate":
            body = zlib.decompress(body)
        spans = 0
        if self.path.endswith("/v1/traces"):
            spans = _count_spans(body, self.headers.get("Content-Type") or "")
            answer, ctype = b"", self.headers.get("Content-Type") or "application/x-protobuf"
        else:
            answer, ctype = b"{}", "application/json"
        with _lock:
            _counts["spans"] += spans
            _counts["requests"] += 1
        self._answer(200, answer, ctype)


def main() -> None:
    port = int(sys.argv[1])
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    print(f"sink listening on 127.0.0.1:{port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
