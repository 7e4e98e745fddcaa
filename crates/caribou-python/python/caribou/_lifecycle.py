"""Process lifecycle: flush at exit, a fresh exporter after ``fork()``.

- ``atexit``: ``shutdown()`` with a bounded wait, so nothing logged is lost when the program
  ends normally, and a Kestrel that is down cannot hang the exit.
- ``os.register_at_fork(after_in_child=...)``: the child forgets the parent's exporter (its
  thread does not exist in the child) without touching its locks; a fresh exporter starts on the
  child's first record. The parent's exporter is untouched.
- ``multiprocessing`` children end with ``os._exit()``, which skips ``atexit``; for them a
  ``multiprocessing.util.Finalize`` flushes at the end of the child's run.
"""

from __future__ import annotations

import atexit
import os
import sys
from typing import Any

from . import _caribou

#: How long the exit hooks wait for Kestrel to acknowledge what is queued, in seconds.
EXIT_TIMEOUT = 10.0

_installed = False
_mp_hooked = False


class _Marker:
    """A weak-referenceable key for ``multiprocessing.util.register_after_fork``."""


_MARKER = _Marker()


def _shutdown_at_exit() -> None:
    try:
        _caribou.shutdown(EXIT_TIMEOUT)
    except Exception:  # noqa: BLE001 - nothing may fail at exit on tracing's account
        pass


def _register_mp_finalizer(_marker: Any) -> None:
    mp_util = sys.modules.get("multiprocessing.util")
    if mp_util is not None:
        mp_util.Finalize(None, _shutdown_at_exit, exitpriority=-10)


def _after_fork_in_child() -> None:
    global _mp_hooked
    _caribou._after_fork_in_child()
    mp_util = sys.modules.get("multiprocessing.util")
    if mp_util is not None and not _mp_hooked:
        # Runs in the child's Process._bootstrap, after multiprocessing clears its finalizers.
        _mp_hooked = True
        mp_util.register_after_fork(_MARKER, _register_mp_finalizer)


def install() -> None:
    """Registers the hooks once per process (idempotent)."""
    global _installed
    if _installed:
        return
    _installed = True
    atexit.register(_shutdown_at_exit)
    if hasattr(os, "register_at_fork"):
        os.register_at_fork(after_in_child=_after_fork_in_child)
