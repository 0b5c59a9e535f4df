"""Which commands may be sent again after a lost connection: the read-only ones.

A command that changes nothing can run twice without harm, so RETRY may re-send it when its
connection drops after the write. Anything else (INCR, EVAL, a batch with one write in it)
is never re-sent once its bytes left (CONTRACT section 6). The list is redis-py's own
(``READ_COMMANDS``, the commands it routes to replicas) plus the server and connection
introspection commands that change nothing.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from redis_conn.internals import READ_COMMANDS

_INTROSPECTION = frozenset(
    {
        "PING",
        "ECHO",
        "INFO",
        "TIME",
        "ROLE",
        "LASTSAVE",
        "DBSIZE",
        "SORT_RO",
        "OBJECT ENCODING",
        "OBJECT FREQ",
        "OBJECT IDLETIME",
        "OBJECT REFCOUNT",
        "MEMORY USAGE",
        "CLIENT GETNAME",
        "CLIENT ID",
        "CLIENT INFO",
        "CLIENT LIST",
        "CONFIG GET",
        "COMMAND",
        "COMMAND COUNT",
        "COMMAND INFO",
        "COMMAND DOCS",
        "CLUSTER INFO",
        "CLUSTER NODES",
        "CLUSTER SHARDS",
        "CLUSTER SLOTS",
        "CLUSTER MYID",
        "CLUSTER KEYSLOT",
        "CLUSTER COUNTKEYSINSLOT",
        "CLUSTER GETKEYSINSLOT",
        "SLOWLOG GET",
        "SLOWLOG LEN",
        "SCRIPT EXISTS",
        "PUBSUB CHANNELS",
        "PUBSUB NUMSUB",
        "PUBSUB NUMPAT",
        "XINFO STREAM",
        "XINFO GROUPS",
        "XINFO CONSUMERS",
    }
)
# Connection set-up a client sends on every new socket: running it twice changes nothing.
_SESSION = frozenset(
    {
        "AUTH",
        "HELLO",
        "SELECT",
        "READONLY",
        "READWRITE",
        "ASKING",
        "CLIENT SETNAME",
        "CLIENT SETINFO",
        "CLIENT TRACKING",
        "CLIENT MAINT_NOTIFICATIONS",
        "CLIENT NO-EVICT",
        "CLIENT NO-TOUCH",
    }
)
READ_ONLY_COMMANDS: frozenset[str] = frozenset(READ_COMMANDS) | _INTROSPECTION
RESENDABLE_COMMANDS: frozenset[str] = READ_ONLY_COMMANDS | _SESSION
# Commands whose second word names the real command ("CLIENT", "LIST").
_CONTAINERS = frozenset(name.split()[0] for name in RESENDABLE_COMMANDS if " " in name) | {
    "CONFIG",
    "FUNCTION",
    "ACL",
    "MODULE",
    "DEBUG",
}
_CONTAINER = 2  # in _known: look at the second word too

_known: dict[Any, int] = {}


def _word(value: Any) -> str:
    text = value.decode("utf-8", "replace") if isinstance(value, bytes | bytearray) else str(value)
    return " ".join(text.split()).upper()


def may_resend(args: tuple[Any, ...]) -> bool:
    """Whether the command ``args`` (``("GET", "k")``, ``("CLIENT", "LIST")``) is safe to send
    again after a lost connection: read-only, or connection set-up. Unknown commands are not."""
    if not args:
        return False
    first = args[0]
    try:
        known = _known[first]
    except (KeyError, TypeError):  # TypeError: an unhashable name (memoryview)
        word = _word(first)
        known = _CONTAINER if word in _CONTAINERS else int(word in RESENDABLE_COMMANDS)
        if len(_known) < 4096 and isinstance(first, str | bytes):  # bounded: names come from code
            _known[first] = known
    if known != _CONTAINER:
        return known == 1
    if " " in _word(first):  # "CLIENT LIST" given as one argument
        return _word(first) in RESENDABLE_COMMANDS
    return len(args) > 1 and f"{_word(first)} {_word(args[1])}" in RESENDABLE_COMMANDS


def all_resendable(commands: Iterable[tuple[Any, ...]]) -> bool:
    """Whether every command of a batch is safe to send again."""
    return all(may_resend(args) for args in commands)


def batch_label(kind: str, count: int) -> str:
    """``a pipeline of 3 commands``: a batch, for an error message."""
    return f"a {kind} of {count} command{'s' if count != 1 else ''}"


def command_name(args: tuple[Any, ...]) -> str:
    """``INCR`` or ``CLIENT KILL``: a command's name for an error message, never its values."""
    if not args:
        return "a command"
    name = _word(args[0])
    if name in _CONTAINERS and len(args) > 1 and " " not in name:
        name = f"{name} {_word(args[1])}"
    return name[:40] or "a command"
