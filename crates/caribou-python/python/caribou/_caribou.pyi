"""Type stubs of the Rust extension ``caribou._caribou`` (checked by ``mypy.stubtest``).

Import everything from ``caribou``, not from here.
"""

from contextvars import ContextVar
from types import TracebackType
from typing import Any, Dict, Generator, List, Mapping, Optional, Type, TypeVar, Union, final, Generic

_T = TypeVar("_T")

__all__ = [
    "__version__",
    "Message",
    "ToolExecution",
    "Event",
    "Grade",
    "RolloutStatus",
    "TraceHandle",
    "trace_run",
    "FlushReport",
    "KestrelClient",
    "Project",
    "Run",
    "KestrelError",
    "CaribouWarning",
    "_bind_context",
    "_Ready",
    "current_trace",
    "open_trace",
    "log",
    "set_status",
    "set_error",
    "add_meta",
    "add_tags",
    "configure",
    "is_enabled",
    "flush",
    "shutdown",
    "_after_fork_in_child",
    "stats",
    "get_kestrel_client",
    "_reset_warnings",
]

__version__: str

_JsonValue = Any
"""What ``content``, ``tool_calls``, ``arguments``, ``result`` and ``data`` accept: a ``str``
(kept as given, JSON text included), a number, a bool, ``None``, a list or dict of these, a
pydantic model (``model_dump(mode="json")``), a dataclass; anything else is stored as its
``str``."""

class KestrelError(Exception):
    """Kestrel answered with an error, or could not be reached.

    ``str(err)`` is the server's message; ``status`` is the HTTP status (None when Kestrel could
    not be reached); ``code`` is the server's error code (``"not_found"``, ...) or
    ``"transport"`` / ``"decode"``.
    """

    status: Optional[int]
    code: Optional[str]

class CaribouWarning(UserWarning):
    """Something about tracing is off: a call outside ``trace_run``, a value that was dropped.

    Each kind is warned once per process; all are counted in ``caribou.stats()``."""

@final
class RolloutStatus:
    """The state of a trace (a rollout). ``RUNNING`` is what an open trace reads; the others end
    one."""

    RUNNING: RolloutStatus
    COMPLETED: RolloutStatus
    TRUNCATED: RolloutStatus
    ERROR: RolloutStatus
    CANCELLED: RolloutStatus
    @property
    def value(self) -> str:
        """The wire spelling: ``"COMPLETED"``, ..."""
    def __eq__(self, value: object, /) -> bool: ...
    def __hash__(self) -> int: ...
    def __int__(self) -> int: ...

@final
class Message:
    """A chat message: user, assistant, system or tool.

    ``role`` must be a ``str`` (``TypeError`` otherwise). ``content`` and ``tool_calls`` take
    what OpenAI- and Anthropic-style clients return. Token counts and the cost accept ints,
    floats and numeric strings; a value that is not a count or an amount is dropped from the
    message with a warning (the message is still logged).
    """

    def __new__(
        cls,
        role: str,
        content: Optional[_JsonValue] = None,
        tool_calls: Optional[_JsonValue] = None,
        tool_call_id: Optional[str] = None,
        name: Optional[str] = None,
        model: Optional[str] = None,
        provider: Optional[str] = None,
        input_tokens: Optional[int] = None,
        output_tokens: Optional[int] = None,
        cost_usd: Optional[float] = None,
        metadata: Optional[Mapping[str, Any]] = None,
    ) -> Message: ...
    @property
    def role(self) -> str: ...
    @property
    def content(self) -> Optional[_JsonValue]: ...
    @property
    def tool_calls(self) -> Optional[_JsonValue]: ...
    @property
    def tool_call_id(self) -> Optional[str]: ...
    @property
    def name(self) -> Optional[str]: ...
    @property
    def model(self) -> Optional[str]: ...
    @property
    def provider(self) -> Optional[str]: ...
    @property
    def input_tokens(self) -> Optional[int]: ...
    @property
    def output_tokens(self) -> Optional[int]: ...
    @property
    def cost_usd(self) -> Optional[float]: ...
    @property
    def metadata(self) -> Optional[Dict[str, Any]]: ...
    def to_dict(self) -> Dict[str, Any]:
        """The item as sent to Kestrel (with ``"type": "message"``)."""
    def __eq__(self, value: object, /) -> bool: ...

@final
class ToolExecution:
    """One run of a tool the agent called.

    ``arguments`` and ``result`` take what clients return (a JSON string stays a string);
    ``error`` takes a ``str`` or an exception (stored as ``"Type: message"``).
    """

    def __new__(
        cls,
        name: str,
        call_id: Optional[str] = None,
        arguments: Optional[_JsonValue] = None,
        result: Optional[_JsonValue] = None,
        requestor: Optional[str] = None,
        error: Optional[Union[str, BaseException]] = None,
        duration_ms: Optional[float] = None,
    ) -> ToolExecution: ...
    @property
    def name(self) -> str: ...
    @property
    def call_id(self) -> Optional[str]: ...
    @property
    def arguments(self) -> Optional[_JsonValue]: ...
    @property
    def result(self) -> Optional[_JsonValue]: ...
    @property
    def requestor(self) -> Optional[str]: ...
    @property
    def error(self) -> Optional[str]: ...
    @property
    def duration_ms(self) -> Optional[float]: ...
    def to_dict(self) -> Dict[str, Any]:
        """The item as sent to Kestrel (with ``"type": "tool_execution"``)."""
    def __eq__(self, value: object, /) -> bool: ...

@final
class Event:
    """A mark on the timeline: a retrieval, a guardrail hit, anything worth noting."""

    def __new__(cls, name: str, data: Optional[_JsonValue] = None, level: Optional[str] = "info") -> Event: ...
    @property
    def name(self) -> str: ...
    @property
    def data(self) -> Optional[_JsonValue]: ...
    @property
    def level(self) -> str: ...
    def to_dict(self) -> Dict[str, Any]:
        """The item as sent to Kestrel (with ``"type": "event"``)."""
    def __eq__(self, value: object, /) -> bool: ...

@final
class Grade:
    """A score for a rollout: ``value`` is a number, a bool or a ``str`` label (``TypeError``
    otherwise); ``name`` such as ``"reward"`` or ``"correct"``; ``grader`` says who or what
    graded."""

    def __new__(
        cls,
        name: str,
        value: Union[float, int, bool, str],
        comment: Optional[str] = None,
        grader: Optional[str] = None,
        metadata: Optional[Mapping[str, Any]] = None,
    ) -> Grade: ...
    @property
    def name(self) -> str: ...
    @property
    def value(self) -> Union[float, bool, str]: ...
    @property
    def comment(self) -> Optional[str]: ...
    @property
    def grader(self) -> Optional[str]: ...
    @property
    def metadata(self) -> Optional[Dict[str, Any]]: ...
    def to_dict(self) -> Dict[str, Any]:
        """The item as sent to Kestrel (with ``"type": "grade"``)."""
    def __eq__(self, value: object, /) -> bool: ...

_Item = Union[Message, ToolExecution, Event, Grade]

@final
class TraceHandle:
    """One turn of a trace, as opened by ``trace_run``. The module-level calls (``caribou.log``,
    ...) act on the current one; these methods act on this one."""

    @property
    def trace_id(self) -> str: ...
    def log(self, item: _Item) -> None: ...
    def set_status(self, status: Union[RolloutStatus, str]) -> None: ...
    def set_error(self, message: Union[str, BaseException], traceback: Optional[str] = None) -> None: ...
    def add_meta(self, meta: Mapping[str, Any]) -> None: ...
    def add_tags(self, *tags: str) -> None: ...
    def close(self, status: Optional[Union[RolloutStatus, str]] = None) -> None:
        """Ends this turn: ``status``, else the last ``set_status``, else COMPLETED. Idempotent."""

@final
class trace_run:
    """One turn of a trace; ``with caribou.trace_run(meta) as trace_id:`` (``async with`` too).

    ``meta`` keys: ``datapoint_id``, ``phase`` (``"eval"``, ``"train"``, ``"prod"``),
    ``model_name``, ``trace_id`` (pass the same id again to add a turn to a trace: multi-turn
    sessions), ``run_id``, ``step``, ``project`` (each defaults to ``configure()``'s value),
    ``metadata`` (a dict merged into the trace's metadata) and ``tags`` (a list). Any other key
    is kept as metadata. Keyword arguments are merged into ``meta``.

    Ends as ``COMPLETED`` (or the last ``set_status``), ``CANCELLED`` on cancellation,
    ``KeyboardInterrupt``, ``GeneratorExit`` or ``SystemExit``, ``ERROR`` (with the message and
    traceback) on any other exception, which always propagates. Never raises itself.
    """

    def __new__(cls, meta: Optional[Mapping[str, Any]] = None, /, **kwargs: Any) -> trace_run: ...
    def __enter__(self) -> str: ...
    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None: ...
    def __aenter__(self) -> _Ready[str]: ...
    def __aexit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> _Ready[None]: ...

@final
class _Ready(Generic[_T]):
    """An already finished awaitable (what ``trace_run.__aenter__``/``__aexit__`` return)."""

    def __await__(self) -> Generator[Any, None, _T]: ...
    def __iter__(self) -> _Ready[_T]: ...
    def __next__(self) -> Any: ...

@final
class FlushReport:
    """What ``flush()`` and ``shutdown()`` report (totals since this process's exporter started)."""

    sent: int
    """Records acknowledged by Kestrel."""
    spooled: int
    """Records durably written to the on-disk spool (Kestrel was down, hung or failing); they are
    delivered when Kestrel is back, by this process or the next one using the same spool folder
    and endpoint."""
    dropped: int
    """Records dropped: queue full, invalid, refused by Kestrel, or deleted from a full spool."""
    pending: int
    """Records neither acknowledged nor on disk when the call returned (non-zero only after a
    timeout)."""
    timed_out: bool
    """True when the timeout passed before everything was acknowledged or spooled."""

@final
class Project:
    """A project: the home of runs and traces."""

    @property
    def name(self) -> str: ...
    @property
    def created_at(self) -> int:
        """Microseconds since the Unix epoch."""
    def to_dict(self) -> Dict[str, Any]: ...

@final
class Run:
    """An eval or training run; pass ``run.id`` to ``configure(run_id=...)``."""

    @property
    def id(self) -> str: ...
    @property
    def project(self) -> str: ...
    @property
    def phase(self) -> str: ...
    @property
    def name(self) -> Optional[str]: ...
    @property
    def config(self) -> Dict[str, Any]: ...
    @property
    def created_at(self) -> int:
        """Microseconds since the Unix epoch."""
    def to_dict(self) -> Dict[str, Any]: ...

@final
class KestrelClient:
    """The Kestrel API, for set-up and reading back. Get it with ``get_kestrel_client()``.

    When no usable endpoint is configured, ``enabled`` is False and every method returns None
    without doing anything. Errors raise ``KestrelError``.
    """

    @property
    def enabled(self) -> bool: ...
    def get_or_create_project(self, name: str) -> Optional[Project]:
        """Creates the project, or returns it when it exists."""
    def create_run(
        self, project: str, phase: str, name: Optional[str] = None, config: Optional[Mapping[str, Any]] = None
    ) -> Optional[Run]:
        """Creates an eval or training run; Kestrel issues its id."""
    def get_run(self, run_id: str) -> Optional[Run]: ...
    def create_run_step(self, run_id: str, step: int) -> Optional[Dict[str, Any]]:
        """Registers a training step (idempotent); returns its figures."""
    def get_run_steps(self, run_id: str) -> Optional[List[Dict[str, Any]]]:
        """Per step: ``rollouts``, ``status`` (count per status), ``grades`` (per name:
        ``count``, ``mean``, ``min``, ``max``, ``p50``, ``p90``), ``input_tokens``,
        ``output_tokens``, ``cost_usd``, ``duration_ms_mean``."""
    def add_datapoints(self, run_id: str, datapoints: Any) -> Optional[int]:
        """Adds ``{"id", "input", "expected", "metadata"}`` dicts; returns how many were stored."""
    def grade(self, trace_id: str, grade: Grade) -> Optional[Dict[str, Any]]:
        """Grades a trace after the fact; returns the stored grade item."""
    def get_trace(self, trace_id: str) -> Optional[Dict[str, Any]]:
        """A trace with its summary fields, ``turns`` and ``items`` (in logged order)."""
    def list_traces(self, **filters: Any) -> Optional[Dict[str, Any]]:
        """A page ``{"data": [...], "next_cursor": ...}``; filters: ``project``, ``run_id``,
        ``phase``, ``step``, ``status``, ``datapoint_id``, ``sort``, ``limit``, ``cursor``."""
    def search(self, query: str, **filters: Any) -> Optional[Dict[str, Any]]:
        """Traces matching a search-language query (``status:error tag:premium_tier "timed
        out"``), with the filters of ``list_traces``; a page as ``list_traces`` answers."""

def configure(
    run_id: Optional[str] = None,
    phase: Optional[str] = "eval",
    step: Optional[int] = None,
    project: Optional[str] = None,
    endpoint: Optional[str] = None,
    api_key: Optional[str] = None,
    **tuning: Any,
) -> None:
    """(Re)configures tracing for this process.

    ``endpoint`` and ``api_key`` default to ``KESTREL_URL`` and ``KESTREL_API_KEY``; with no
    endpoint tracing is a silent no-op (``endpoint=""`` forces that). The endpoint is a base URL
    ``http://HOST[:PORT][/PATH]``; any other value (not a URL, ``https://`` (this build has no
    TLS), another scheme, no host) is refused: one warning on the ``caribou`` logger, and tracing
    is a no-op as with no endpoint (``is_enabled()`` and ``get_kestrel_client().enabled`` are
    False). Tuning keywords: ``queue_capacity`` (records waiting for the exporter, default
    262,144) and ``queue_max_bytes`` (the bytes of their JSON, default 256 MiB; beyond either
    bound records are dropped, counted and warned about once), ``max_batch_records``,
    ``max_retries``, ``flush_interval``, ``connect_timeout``, ``request_timeout`` (seconds),
    ``spool`` (bool, default on: keep what Kestrel does not take on disk), ``spool_dir`` (default
    ``<user cache dir>/caribou/spool``; batches are kept in its subfolder named after a hash of
    the endpoint, so only processes for that endpoint replay them; batch files lying in the
    folder itself are never replayed, and warned about once), ``spool_max_bytes`` (per endpoint,
    default 1 GiB). An earlier exporter is flushed first.
    """

def is_enabled() -> bool:
    """True when traces are sent somewhere (a usable endpoint is configured)."""

def get_kestrel_client() -> KestrelClient:
    """A client for the configured Kestrel (see ``configure``); disabled without a usable
    endpoint."""

def log(item: _Item) -> None:
    """Logs an item to the current trace. Outside ``trace_run``: warns once, does nothing.
    Never raises."""

def set_status(status: Union[RolloutStatus, str]) -> None:
    """Sets the current trace's status (the last one wins; an exception leaving ``trace_run``
    wins over all)."""

def set_error(message: Union[str, BaseException], traceback: Optional[str] = None) -> None:
    """Records an error message (and a traceback) on the current trace."""

def add_meta(meta: Mapping[str, Any]) -> None:
    """Merges keys into the current trace's metadata."""

def add_tags(*tags: str) -> None:
    """Adds tags to the current trace."""

def current_trace() -> Optional[TraceHandle]:
    """The current trace, or None outside ``trace_run``."""

def open_trace(meta: Optional[Mapping[str, Any]] = None) -> TraceHandle:
    """Opens a turn of a trace without making it current (``trace_run`` does both)."""

def flush(timeout: Optional[float] = None) -> FlushReport:
    """Waits until everything logged so far is acknowledged by Kestrel or durably spooled (or
    dropped), or ``timeout`` seconds pass."""

def shutdown(timeout: Optional[float] = None) -> FlushReport:
    """Flushes and stops; later logging does nothing. Idempotent; also runs at exit."""

def stats() -> Dict[str, int]:
    """Counters of this process's exporter (they restart at ``configure`` and in a forked child):
    ``enqueued``, ``sent``, ``dropped``, ``pending``, ``failed_batches``, the drops by cause
    (``dropped_queue_full``, ``dropped_invalid``, ``dropped_rejected``, ``dropped_unsent``), and what the Python layer dropped or ignored (``outside_trace_calls``,
    ``dropped_fields``, ``dropped_items``, ``bad_arguments``)."""

def _bind_context(var: ContextVar[Optional[TraceHandle]]) -> None: ...
def _after_fork_in_child() -> None: ...
def _reset_warnings() -> None: ...
