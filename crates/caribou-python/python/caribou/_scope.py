"""``trace_run``: one turn of a trace, as a context manager.

The current trace lives in :data:`CURRENT_TRACE`, a ``contextvars.ContextVar``: each thread and
each asyncio task sees its own value, so a thousand concurrent requests never mix their items.
``with`` works in plain code and inside ``async def`` (the seed's usage); ``async with`` works
too. The Rust extension reads the same variable in ``caribou.log`` and friends.

How a block ends decides the turn's status:

- normally: the last ``set_status`` value, else ``COMPLETED``;
- ``asyncio.CancelledError``, ``KeyboardInterrupt``, ``GeneratorExit``, ``SystemExit``:
  ``CANCELLED``;
- any other exception: ``ERROR``, with ``"Type: message"`` and the formatted traceback recorded.

The exception is always re-raised; closing the trace itself never raises.
"""

from __future__ import annotations

import sys
import traceback
from contextvars import ContextVar, Token
from types import TracebackType
from typing import Any, Mapping, Optional, Type

from . import _caribou
from ._caribou import RolloutStatus, TraceHandle

CURRENT_TRACE: ContextVar[Optional[TraceHandle]] = ContextVar("caribou_current_trace", default=None)
_caribou._bind_context(CURRENT_TRACE)

# Always "cancelled"; asyncio's and concurrent.futures' CancelledError are looked up when needed
# (they can only have been raised if their module was imported), so importing caribou does not
# import asyncio.
_CANCEL_TYPES = (KeyboardInterrupt, GeneratorExit, SystemExit)


def _is_cancellation(exc_type: Type[BaseException]) -> bool:
    if issubclass(exc_type, _CANCEL_TYPES):
        return True
    for module in ("asyncio", "concurrent.futures"):
        mod = sys.modules.get(module)
        cancelled = getattr(mod, "CancelledError", None) if mod is not None else None
        if cancelled is not None and issubclass(exc_type, cancelled):
            return True
    return False


class trace_run:
    """One turn of a trace; ``with caribou.trace_run(meta) as trace_id:``.

    ``meta`` keys: ``datapoint_id``, ``phase`` (``"eval"``, ``"train"``, ``"prod"``),
    ``model_name``, ``trace_id`` (pass the same id again to add a turn to a trace: multi-turn
    sessions), ``run_id``, ``step``, ``project`` (each defaults to ``configure()``'s value),
    ``metadata`` (a dict merged into the trace's metadata) and ``tags`` (a list). Any other key
    is kept as metadata. Keyword arguments are merged into ``meta``.
    """

    __slots__ = ("_meta", "_handle", "_token")

    def __init__(self, meta: Optional[Mapping[str, Any]] = None, /, **kwargs: Any) -> None:
        if kwargs:
            meta = {**(meta or {}), **kwargs}
        self._meta = meta
        self._handle: Optional[TraceHandle] = None
        self._token: Optional[Token[Optional[TraceHandle]]] = None

    def __enter__(self) -> str:
        handle = _caribou.open_trace(self._meta)
        self._handle = handle
        self._token = CURRENT_TRACE.set(handle)
        return handle.trace_id

    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        handle, token = self._handle, self._token
        self._handle = self._token = None
        if handle is None or token is None:
            return
        try:
            CURRENT_TRACE.reset(token)
        except ValueError:
            # Exited in another context than the one entered (a generator resumed elsewhere):
            # restore what was current before this block, in this context.
            old = token.old_value
            CURRENT_TRACE.set(None if old is Token.MISSING else old)
        try:
            _finish(handle, exc_type, exc, tb)
        except Exception:  # noqa: BLE001 - tracing must never mask the agent's own outcome
            pass
        # Returning None lets any exception propagate: trace_run never swallows one.

    async def __aenter__(self) -> str:
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        self.__exit__(exc_type, exc, tb)

    def __repr__(self) -> str:
        return f"trace_run({self._meta!r})"


def _finish(
    handle: TraceHandle,
    exc_type: Optional[Type[BaseException]],
    exc: Optional[BaseException],
    tb: Optional[TracebackType],
) -> None:
    if exc_type is None:
        handle.close()
    elif _is_cancellation(exc_type):
        handle.close(RolloutStatus.CANCELLED)
    else:
        text = "".join(traceback.format_exception(exc_type, exc, tb))
        handle.set_error(exc if exc is not None else exc_type.__name__, text)
        handle.close(RolloutStatus.ERROR)
