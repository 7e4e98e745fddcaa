"""The current trace: :data:`CURRENT_TRACE`, and ``trace_run`` (implemented in the extension).

The current trace lives in :data:`CURRENT_TRACE`, a ``contextvars.ContextVar``: each thread and
each asyncio task sees its own value, so a thousand concurrent requests never mix their items.
The Rust extension reads and sets this variable (``caribou.log`` and friends read it,
``trace_run`` sets and resets it); it is bound to the extension once, here.

``trace_run`` is a context manager: ``with`` works in plain code and inside ``async def`` (the
seed's usage); ``async with`` works too. How a block ends decides the turn's status:

- normally: the last ``set_status`` value, else ``COMPLETED``;
- ``asyncio.CancelledError``, ``KeyboardInterrupt``, ``GeneratorExit``, ``SystemExit``:
  ``CANCELLED``;
- any other exception: ``ERROR``, with ``"Type: message"`` and the formatted traceback recorded.

The exception is always re-raised; closing the trace itself never raises. It is written in Rust
because it runs once per request on the agent's hot path (see ``src/trace_run.rs``).
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import Optional

from . import _caribou
from ._caribou import TraceHandle, trace_run

CURRENT_TRACE: ContextVar[Optional[TraceHandle]] = ContextVar("caribou_current_trace", default=None)
_caribou._bind_context(CURRENT_TRACE)

__all__ = ["CURRENT_TRACE", "trace_run"]
