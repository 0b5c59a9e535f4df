"""Settling a sent batch's futures and reporting its failures, shared by the sync pipeline
(:mod:`redis_conn.pipeline`) and its asyncio twin (:mod:`redis_conn.async_pipeline`).

Only what a batch's replies (or the error that stopped it) mean for each future lives here;
how a batch is sent is each twin's own business.
"""

from __future__ import annotations

from typing import Any

from redis.exceptions import ExecAbortError, InvalidResponse, ResponseError, WatchError

from redis_conn import messages
from redis_conn.exceptions import (
    ConnectionLostAfterWrite,
    OutcomeUnknown,
    PipelineError,
    ReplyNotUnderstood,
)
from redis_conn.futures import Future, Work
from redis_conn.internals import EMPTY_RESPONSE, NEVER_DECODE

__all__ = [
    "fail_unanswered",
    "fail_unsettled",
    "interrupted",
    "raise_failures",
    "settle_replies",
    "settle_transaction",
    "settle_unsent_empty",
]


def settle_replies(futures: list[Future[Any]], replies: list[Any]) -> BaseException | None:
    """Settle futures from a reply list in which failed commands are exception objects."""
    if len(replies) != len(futures):
        raise InvalidResponse(f"Expected {len(futures)} replies, got {len(replies)}.")
    first_error: BaseException | None = None
    for future, reply in zip(futures, replies, strict=True):
        if isinstance(reply, Exception):
            future._fail_command(reply)
            first_error = first_error or reply
        else:
            future._set(reply)
    return first_error


def settle_transaction(
    client: Any,
    sent: list[Future[Any]],
    queue_errors: dict[int, ResponseError],
    exec_reply: Any,
) -> BaseException | None:
    """Settle the commands sent between MULTI and EXEC, from EXEC's reply or EXECABORT.

    ``queue_errors`` maps a position in ``sent`` to the error Redis gave instead of QUEUED.
    """
    if isinstance(exec_reply, ExecAbortError) or exec_reply is None:
        abort = exec_reply if exec_reply is not None else WatchError("EXEC returned no replies.")
        first_error: BaseException | None = None
        for index, future in enumerate(sent):
            error = queue_errors.get(index)
            if error is not None:
                future._fail_command(error)
                first_error = first_error or error
            else:
                future._fail(abort)
        return first_error or abort
    if len(exec_reply) != len(sent):
        raise InvalidResponse(f"EXEC returned {len(exec_reply)} replies for {len(sent)} commands.")
    callbacks = client.response_callbacks
    first_error = None
    for future, reply in zip(sent, exec_reply, strict=True):
        if isinstance(reply, Exception):
            future._fail_command(reply)
            first_error = first_error or reply
            continue
        # parse_response applies callbacks to single replies; EXEC's array needs them by hand.
        callback = callbacks.get(future._args[0])
        if callback is not None:
            options = {
                k: v
                for k, v in future._options.items()
                if k not in ("keys", NEVER_DECODE, EMPTY_RESPONSE)
            }
            try:
                reply = callback(reply, **options)
            except Exception as exc:
                future._fail(exc)
                first_error = first_error or exc
                continue
        future._set(reply)
    return first_error


def settle_unsent_empty(futures: list[Future[Any]]) -> list[Future[Any]]:
    """In a transaction, settle commands redis-py answers locally (``mget([])``) and skip them.

    Sending them would abort the whole MULTI with an arity error.
    """
    to_send = []
    for future in futures:
        if EMPTY_RESPONSE in future._options:
            future._set(future._options[EMPTY_RESPONSE])
        else:
            to_send.append(future)
    return to_send


def interrupted(name: str, exc: BaseException) -> ConnectionLostAfterWrite:
    """What the unanswered commands of a batch stopped by an error, KeyboardInterrupt or a
    cancellation settle with: they were written, so they may or may not have run."""
    cause = type(exc)
    if isinstance(exc, ReplyNotUnderstood) and exc.__cause__ is not None:
        cause = type(exc.__cause__)  # what went wrong while reading
    elif isinstance(exc, OutcomeUnknown):  # say TimeoutError, not our subclass's name
        cause = next(c for c in cause.__mro__ if c.__module__ == "redis.exceptions")
    error = ConnectionLostAfterWrite(
        name,
        "the batch",
        "",
        message=f"{messages.prefix(name)}the batch was interrupted by {cause.__name__}; "
        "its connection was closed and the unanswered commands may or may not have run.",
    )
    error.__cause__ = exc
    return error


def fail_unsettled(futures: list[Future[Any]], error: BaseException) -> None:
    for future in futures:
        if not future.done():
            future._fail(error)


def fail_unanswered(name: str, futures: list[Future[Any]], exc: BaseException) -> None:
    """A batch broke off while reading its replies (``futures[0]``'s was being read).

    That command gets the error itself (a timeout, say); the later ones were never answered:
    they get an "interrupted" error saying they may or may not have run.
    """
    if isinstance(exc, Exception) and not futures[0].done():
        futures[0]._fail(exc)
    fail_unsettled(futures, interrupted(name, exc))


def raise_failures(work: Work, errors: list[BaseException | None]) -> None:
    """Raise one PipelineError naming every failed backend and command, if any failed."""
    failed = {
        name: error for (name, _), error in zip(work, errors, strict=True) if error is not None
    }
    if not failed:
        return
    commands = [
        future.command
        for name, futures in work
        if name in failed
        for future in futures
        if future._failed()
    ]
    raise PipelineError(failed, failed_commands=commands)
