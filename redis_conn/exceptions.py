"""Every error redis_conn raises, under one base class."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from redis.exceptions import ConnectionError as _RedisConnectionError
from redis.exceptions import MaxConnectionsError as _PoolLimitError
from redis.exceptions import TimeoutError as _RedisTimeoutError

from redis_conn import messages
from redis_conn.masking import mask_text


class RedisConnError(Exception):
    """Base class of every error raised by redis_conn."""


class ConfigurationError(RedisConnError, ValueError):
    """REDIS_CONNECTIONS is invalid; the message names each connection and key at fault."""

    def __init__(self, problems: Iterable[str]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


class ConnectionNotFound(RedisConnError, KeyError):
    """``get_redis(name)`` for a name that is not configured."""

    def __init__(self, name: str, configured: Iterable[str]) -> None:
        self.name = name
        self.configured = sorted(configured)
        listed = ", ".join(repr(n) for n in self.configured) or "none"
        self.message = (
            f"{messages.subject(name)} is not configured. Configured connections: {listed}."
        )
        super().__init__(self.message)

    def __str__(self) -> str:
        # KeyError.__str__ would repr() the message and show it in quotes.
        return self.message


class PoolExhausted(RedisConnError, _PoolLimitError):
    """No free connection: a full non-blocking pool, or a blocking pool that waited POOL_TIMEOUT.

    A ``redis.exceptions.ConnectionError`` (and redis-py's ``MaxConnectionsError`` where it
    exists, so that RedisCluster does not mistake a busy client for a failed node).
    """

    def __init__(self, name: str, max_connections: int, *, waited: float | None = None) -> None:
        self.connection_name = name
        self.max_connections = max_connections
        self.waited = waited
        if waited is None:
            detail = "all connections are in use and the pool does not block (BLOCKING=False)"
        else:
            detail = f"no connection was released within POOL_TIMEOUT={waited:g}s"
        super().__init__(
            f"{messages.prefix(name)}pool exhausted, {detail}; MAX_CONNECTIONS={max_connections}."
        )


class OutcomeUnknown(RedisConnError):
    """A command that is not read-only (or a batch) was written to the server, then its
    connection was lost or its reply timed out: it may or may not have run.

    redis_conn never sends it again (CONTRACT section 6). Catch this to decide yourself, e.g.
    by reading the key back. The concrete classes are also redis-py's ``ConnectionError`` or
    ``TimeoutError``, so code that handles those keeps working.
    """

    def __init__(
        self, connection_name: str, command: str, detail: str, *, message: str | None = None
    ) -> None:
        self.connection_name = connection_name
        self.command = command
        if message is None:
            message = (
                f"{messages.prefix(connection_name)}{detail.rstrip('.')} after {command} "
                "was sent; it may or may not have run, and it was not sent again."
            )
        super().__init__(message)


class ConnectionLostAfterWrite(OutcomeUnknown, _RedisConnectionError):
    """The connection was lost after a non-read-only command or a batch was written."""


class TimeoutAfterWrite(OutcomeUnknown, _RedisTimeoutError):
    """No reply within SOCKET_TIMEOUT after a non-read-only command or a batch was written."""


class ReplyNotUnderstood(OutcomeUnknown, _RedisConnectionError):
    """A command reached the server, then reading or parsing its reply failed inside the client
    (a bug, or a dependency release that changed something we rely on): it may or may not have
    run, exactly as when the connection is lost after the write (CONTRACT section 13)."""

    def __init__(self, connection_name: str, command: str, cause: BaseException) -> None:
        # The cause's text may quote a connection's repr, password included.
        detail = f"its reply could not be read ({type(cause).__name__}: {mask_text(str(cause))})"
        super().__init__(
            connection_name,
            command,
            detail,
            message=(
                f"{messages.prefix(connection_name)}{command} was sent, then "
                f"{detail.rstrip('.')}; it may or may not have run, and it was not sent again."
            ),
        )
        self.__cause__ = cause


class ResultNotReady(RedisConnError):
    """A Future's ``.result`` was read before its pipeline executed."""


class PipelineError(RedisConnError):
    """One or more backends (or commands) of a pipeline failed.

    ``.errors`` maps each failing backend, by the first connection name queued on it, to the
    backend's exception or, when only commands failed, to the first failed command's exception.
    ``.failed_commands`` describes every command that did not succeed as ``"'users': HSET u{1}"``:
    connection, command name and first key, never values (they may be secrets or personal data).
    """

    #: How many failed commands the message lists; ``.failed_commands`` has them all.
    SHOWN_COMMANDS = 5

    def __init__(
        self, errors: Mapping[str, BaseException], *, failed_commands: Iterable[str] = ()
    ) -> None:
        self.errors = dict(errors)
        self.failed_commands = list(failed_commands)
        # Each part loses its own final period so the sentences join cleanly.
        parts = [
            f"{name!r}: {type(err).__name__}: {str(err).rstrip('.')}"
            for name, err in self.errors.items()
        ]
        message = "Pipeline failed on " + "; ".join(parts)
        if self.failed_commands:
            count = len(self.failed_commands)
            shown = ", ".join(self.failed_commands[: self.SHOWN_COMMANDS])
            more = count - self.SHOWN_COMMANDS
            message += f". {count} command{'s' if count != 1 else ''} failed: {shown}"
            if more > 0:
                message += f" and {more} more"
        super().__init__(message + ".")
