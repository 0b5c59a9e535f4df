"""CLIENT_CACHE as a connection spec keeps it (CONTRACT section 11); checked in
:mod:`redis_conn.entries`, used by :mod:`redis_conn.client_cache`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

__all__ = ["DEFAULT_MAX_BYTES", "DEFAULT_MAX_ENTRIES", "CacheSettings", "cache_settings"]

DEFAULT_MAX_ENTRIES: Final = 10_000
DEFAULT_MAX_BYTES: Final = 64 * 2**20


@dataclass(frozen=True)
class CacheSettings:
    """A connection's CLIENT_CACHE, checked (``redis_conn.entries``) and with its defaults."""

    max_entries: int = DEFAULT_MAX_ENTRIES
    max_bytes: int = DEFAULT_MAX_BYTES
    #: Only keys starting with one of these are kept, and only their writes are announced
    #: (``CLIENT TRACKING ... BCAST PREFIX``); empty: every key.
    prefixes: tuple[bytes, ...] = ()

    @property
    def largest_value(self) -> int:
        """A value larger than this (1/16 of MAX_BYTES) is never kept."""
        return self.max_bytes // 16


def cache_settings(value: object) -> CacheSettings | None:
    """CLIENT_CACHE as the spec keeps it: None when off (False, the default)."""
    if value is None or value is False:
        return None
    if value is True:
        return CacheSettings()
    assert isinstance(value, Mapping)  # the checks in redis_conn.entries ran first
    prefixes = tuple(
        p.encode() if isinstance(p, str) else bytes(p) for p in value.get("PREFIXES", ())
    )
    return CacheSettings(
        max_entries=int(value.get("MAX_ENTRIES", DEFAULT_MAX_ENTRIES)),
        max_bytes=int(value.get("MAX_BYTES", DEFAULT_MAX_BYTES)),
        prefixes=prefixes,
    )
