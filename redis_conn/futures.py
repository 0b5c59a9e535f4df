"""The result of one queued command: :class:`Future`, and how a command is named in messages.

A future is settled by the batch that sent its command (:mod:`redis_conn.settling`), in the
sync or the asyncio pipeline alike; this module knows nothing of how batches are sent.
"""

from __future__ import annotations

from typing import Any, Generic, TypeVar

from redis.exceptions import ResponseError

from redis_conn.exceptions import ResultNotReady

__all__ = ["Future", "Work", "describe_command"]

T = TypeVar("T")

_PENDING, _VALUE, _ERROR, _DISCARDED = 0, 1, 2, 3

# Commands whose first argument is not a key and may be a secret (AUTH) or a script body.
_NO_KEY_SHOWN = frozenset(
    {"AUTH", "HELLO", "ECHO", "PING", "SELECT", "MIGRATE", "SWAPDB", "WAIT", "WAITAOF", "SCAN"}
)
_SCRIPT_CALLS = frozenset({"EVAL", "EVAL_RO", "EVALSHA", "EVALSHA_RO", "FCALL", "FCALL_RO"})
_KEY_SHOWN_CHARS = 60


def _text(value: Any) -> str:
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).decode("utf-8", "backslashreplace")
    return str(value)


def describe_command(connection: str, args: tuple[Any, ...]) -> str:
    """``"'users': HSET u{1}"``: connection, command name and first key, never any value."""
    name = _text(args[0]).upper()
    key: Any = None
    if name in _SCRIPT_CALLS:
        # EVAL script numkeys key...: the first key, if any, comes after the key count.
        if len(args) > 3 and _text(args[2]).isdigit() and int(_text(args[2])) > 0:
            key = args[3]
    elif len(args) > 1 and " " not in name and name not in _NO_KEY_SHOWN:
        key = args[1]
    if key is None:
        return f"{connection!r}: {name}"
    shown = _text(key)
    if len(shown) > _KEY_SHOWN_CHARS:
        shown = shown[: _KEY_SHOWN_CHARS - 1] + "…"
    return f"{connection!r}: {name} {shown}"


class Future(Generic[T]):
    """The result of one queued command, settled when its root pipeline executes.

    ``.result`` raises :class:`ResultNotReady` until then; afterwards it is the command's value,
    or raises the command's own exception (or its backend's, if the batch failed).
    """

    __slots__ = ("_args", "_connection", "_options", "_state", "_value")

    _state: int
    _value: Any  # the value, the exception, or why it was discarded

    def __init__(self, connection: str, args: tuple[Any, ...], options: dict[str, Any]) -> None:
        self._connection = connection
        self._args = args
        self._options = options
        self._state = _PENDING

    @property
    def result(self) -> T:
        state = self._state
        if state == _VALUE:
            return self._value  # type: ignore[no-any-return]
        if state == _ERROR:
            raise self._value
        if state == _DISCARDED:
            raise ResultNotReady(
                f"{self.command} will never have a result: it was discarded because "
                f"{self._value}; nothing was sent."
            )
        raise ResultNotReady(f"{self.command} has no result yet: its pipeline has not executed.")

    def done(self) -> bool:
        """Whether the future has settled (a value, an error, or discarded)."""
        return self._state != _PENDING

    @property
    def command(self) -> str:
        """The command, for messages and logs: ``"'users': HSET u{1}"`` (no values)."""
        return describe_command(self._connection, self._args)

    def __repr__(self) -> str:
        state = ("pending", "done", "failed", "discarded")[self._state]
        return f"<Future {self.command} {state}>"

    # -- settling (pipeline internals) -----------------------------------------------------

    def _set(self, value: Any) -> None:
        self._value = value
        self._state = _VALUE

    def _fail(self, error: BaseException) -> None:
        self._value = error
        self._state = _ERROR

    def _fail_command(self, error: BaseException) -> None:
        # The command's own error (WRONGTYPE...): name the connection and key in its message,
        # as redis-py's pipelines do, but without the values they print.
        prefix = f"{self.command}: "
        if (
            isinstance(error, ResponseError)
            and error.args
            and isinstance(error.args[0], str)
            and not error.args[0].startswith(prefix)
        ):
            error.args = (prefix + error.args[0], *error.args[1:])
        self._fail(error)

    def _failed(self) -> bool:
        return self._state == _ERROR

    def _discard(self, reason: str) -> None:
        self._value = reason
        self._state = _DISCARDED


#: What one execute sends: (connection name, futures) per backend.
Work = list[tuple[str, list[Future[Any]]]]
