"""Commands that leave a connection in a state the next borrower must not inherit.

CONTRACT section 10: a connection goes back to its pool as it came out. A command that changes
the session (SELECT, MONITOR, SUBSCRIBE, CLIENT REPLY, HELLO, AUTH, READONLY, RESET, ...) or
opens a transaction it does not close (MULTI without EXEC/DISCARD, WATCH without
EXEC/DISCARD/UNWATCH) marks its connection; a marked connection is closed when it is given
back, never lent again (the next borrower gets a fresh connection and the configured
handshake). Closing rather than ``RESET`` + handshake: it works on every server version and
costs one reconnect, only after the rare command that needs it.

:func:`session_after` is called for every command packed on a guarded connection, so it is a
dictionary lookup for the name as given, computed once per distinct name.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

__all__ = ["CLEAN", "QUIET", "SESSION_COMMANDS", "session_after"]

#: Commands whose effect lasts until the connection is closed.
SESSION_COMMANDS = frozenset(
    {
        "SELECT",
        "MONITOR",
        "SUBSCRIBE",
        "PSUBSCRIBE",
        "SSUBSCRIBE",
        "HELLO",
        "AUTH",
        "READONLY",
        "READWRITE",
        "RESET",
        "QUIT",
        "SYNC",
        "PSYNC",
        "REPLCONF",
        "CLIENT TRACKING",
        "CLIENT REPLY",
        "CLIENT CACHING",
        "CLIENT SETNAME",
        "CLIENT SETINFO",
        "CLIENT NO-EVICT",
        "CLIENT NO-TOUCH",
    }
)

# The session state, as bits: clean, inside MULTI, watching keys, changed for good.
CLEAN, _MULTI, _WATCH, _CHANGED = 0, 1, 2, 4

# What a command does to the state: (bits it clears, bits it sets).
_KEEPS = (0, 0)
_EFFECTS: dict[str, tuple[int, int]] = {
    "MULTI": (0, _MULTI),
    "EXEC": (_MULTI | _WATCH, 0),
    "DISCARD": (_MULTI | _WATCH, 0),
    "WATCH": (0, _WATCH),
    "UNWATCH": (_WATCH, 0),
    **{name: (0, _CHANGED) for name in SESSION_COMMANDS},
}
_BY_SUBCOMMAND = frozenset({"CLIENT"})
_UNKNOWN: Any = object()
_cache: dict[Any, tuple[int, int] | None] = {}  # name as given -> effect (None: see subcommand)
#: Command names, as given, known to leave the session as it is (GET, SET, ...): a caller on
#: the per-command path skips :func:`session_after` for them with one set lookup.
QUIET: set[Any] = set()
_MAX_CACHED = 1024


def _word(value: Any) -> str:
    if isinstance(value, bytes | bytearray | memoryview):
        value = bytes(value).decode("utf-8", "replace")
    return str(value).upper()


def _effect(args: tuple[Any, ...] | list[Any]) -> tuple[int, int]:
    if not args:
        return _KEEPS
    name = args[0]
    try:
        effect = _cache.get(name, _UNKNOWN)
    except TypeError:  # an unhashable name (memoryview)
        effect = _UNKNOWN
    if effect is _UNKNOWN:
        words = _word(name).split()
        if len(words) == 1 and words[0] in _BY_SUBCOMMAND:
            effect = None
        else:
            effect = _EFFECTS.get(
                " ".join(words[:2]), _EFFECTS.get(words[0] if words else "", _KEEPS)
            )
        if len(_cache) < _MAX_CACHED and isinstance(name, str | bytes):
            _cache[name] = effect
            if effect == _KEEPS:
                QUIET.add(name)
    if effect is None:  # CLIENT <subcommand>
        if len(args) < 2:
            return _KEEPS
        return _EFFECTS.get(f"{_word(args[0])} {_word(args[1])}", _KEEPS)
    return effect  # type: ignore[no-any-return]


def session_after(state: int, commands: Iterable[tuple[Any, ...] | list[Any]]) -> int:
    """The session state after ``commands`` ran, in order, on a connection in ``state``."""
    for args in commands:
        clears, sets = _effect(args)
        if clears or sets:
            state = (state & ~clears) | sets
    return state
