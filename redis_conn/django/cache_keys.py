"""The cache's Redis keys as SCAN patterns, and back to the keys callers used.

``keys()``, ``iter_keys()``, ``delete_pattern()`` and ``clear()`` find the cache's keys with
SCAN MATCH. Their patterns are made by the cache's own KEY_FUNCTION, as django-redis makes
them, with the glob characters of KEY_PREFIX and the version escaped; a Redis key is turned
back into the caller's key by matching it against what KEY_FUNCTION makes of two markers.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

KeyFunc = Callable[[Any, str, Any], str]
_KEY_MARK, _VERSION_MARK = "\x00key\x00", "\x00version\x00"


def glob_escape(text: str) -> str:
    return re.sub(r"([*?\[\]\\])", r"\\\1", text)


def key_pattern(key_func: KeyFunc, key_prefix: str, search: str, version: Any) -> str:
    """The glob matching the Redis keys of the glob ``search`` at ``version`` (``"*"``: any)."""
    version = version if version == "*" else glob_escape(str(version))
    return key_func(search, glob_escape(key_prefix), version)


class KeyReverser:
    """Gives back the key a caller used from a Redis key that ``key_func`` made."""

    def __init__(self, key_func: KeyFunc, key_prefix: str) -> None:
        made = re.escape(key_func(_KEY_MARK, key_prefix, _VERSION_MARK))
        made = made.replace(re.escape(_KEY_MARK), "(?P<key>.*)", 1)
        self._regex = re.compile(made.replace(re.escape(_VERSION_MARK), ".*?", 1), re.DOTALL)

    def __call__(self, key: bytes | str) -> str:
        text = key.decode() if isinstance(key, bytes) else key
        match = self._regex.fullmatch(text)
        return match.group("key") if match else text
