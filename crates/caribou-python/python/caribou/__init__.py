"""Caribou: tracing for LLM agents.

Log what an agent did -- messages, tool executions, events, grades -- in eval runs, training runs
and production, and send it to a Kestrel server::

    import caribou
    from caribou import Message

    caribou.configure(run_id="my-project", phase="prod")   # KESTREL_URL names the server
    with caribou.trace_run({"datapoint_id": request_id, "model_name": "gpt-4o"}) as trace_id:
        caribou.log(Message(role="user", content=user_input))
        ...
    caribou.flush()

Logging never raises into the agent and never blocks it: items go to a bounded queue that a
background thread (in Rust) batches and sends. With no endpoint configured everything is a
silent no-op; an endpoint that is not ``http://HOST[:PORT]`` is warned about once (logger
``caribou``) and treated as none. The current trace is held in a ``contextvars.ContextVar``, so
threads and asyncio tasks never mix their items.
"""

from __future__ import annotations

from . import _lifecycle
from ._caribou import (
    CaribouWarning,
    Event,
    FlushReport,
    Grade,
    KestrelClient,
    KestrelError,
    Message,
    Project,
    RolloutStatus,
    Run,
    ToolExecution,
    TraceHandle,
    __version__,
    add_meta,
    add_tags,
    configure,
    current_trace,
    flush,
    get_kestrel_client,
    is_enabled,
    log,
    set_error,
    set_status,
    shutdown,
    stats,
)
from ._scope import trace_run

__all__ = [
    "CaribouWarning",
    "Event",
    "FlushReport",
    "Grade",
    "KestrelClient",
    "KestrelError",
    "Message",
    "Project",
    "RolloutStatus",
    "Run",
    "ToolExecution",
    "TraceHandle",
    "__version__",
    "add_meta",
    "add_tags",
    "configure",
    "current_trace",
    "flush",
    "get_kestrel_client",
    "is_enabled",
    "log",
    "set_error",
    "set_status",
    "shutdown",
    "stats",
    "trace_run",
]

_lifecycle.install()
