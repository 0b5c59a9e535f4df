"""How a message names the connection it is about: ``Redis connection 'users': ...``.

Every error and log line about one connection starts with the same words, so that a reader
(and a log search) finds them all; this is their one home. An error that travels through
several layers is prefixed once (``prefixed``), and a layer that quotes another error's own
words takes the prefix off again (``unprefixed``).
"""

from __future__ import annotations

__all__ = ["prefix", "prefixed", "subject", "unprefixed"]


def subject(name: str) -> str:
    """The connection as the subject of a sentence: ``Redis connection 'users'``."""
    return f"Redis connection {name!r}"


def prefix(name: str) -> str:
    """The words a message about one connection starts with: ``Redis connection 'users': ``."""
    return f"{subject(name)}: "


def prefixed(name: str, text: str) -> str:
    """``text`` starting with ``name``'s prefix, exactly once."""
    start = prefix(name)
    return text if text.startswith(start) else start + text


def unprefixed(name: str, text: str) -> str:
    """``text`` without ``name``'s prefix, if it starts with it."""
    return text.removeprefix(prefix(name))
