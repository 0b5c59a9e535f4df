"""The OPTIONS of redis_conn's cache backend: checked, and turned into a codec.

One place that says what is wrong with a cache's OPTIONS (the system checks show it, the
backend raises it), and which CACHES aliases use the backend, by connection (for
``redis_pools``). Imports nothing of the backend itself at module level.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.utils.module_loading import import_string

from redis_conn.codecs import (
    COMPRESSORS,
    DEFAULT_COMPRESS_MIN_LEN,
    SERIALIZERS,
    Codec,
    JSONSerializer,
    resolve,
)

__all__ = ["OPTION_KEYS", "caches_by_connection", "codec", "option_problems"]

OPTION_KEYS = ("SERIALIZER", "COMPRESSOR", "COMPRESS_MIN_LEN", "IGNORE_EXCEPTIONS")


def option_problems(options: object) -> list[str]:
    """What is wrong with a cache's OPTIONS, as sentences (the system checks show them)."""
    if not isinstance(options, dict):
        return [f"OPTIONS must be a dict, not {type(options).__name__}."]
    if not options:
        return []
    problems = [
        f"OPTIONS has an unknown key {key!r}; the known keys are {', '.join(OPTION_KEYS)}."
        for key in options
        if key not in OPTION_KEYS
    ]
    try:
        codec(options)
    except ValueError as exc:
        problems.append(str(exc))
    ignore = options.get("IGNORE_EXCEPTIONS", False)
    if not isinstance(ignore, bool):
        problems.append(f"OPTIONS['IGNORE_EXCEPTIONS'] must be True or False, not {ignore!r}.")
    return problems


def codec(options: dict[str, Any]) -> Codec:
    # Django makes a cache object per thread and, under ASGI, per request: build the codec
    # (imports of dotted paths included) once per distinct OPTIONS.
    try:
        return _shared_codec(tuple(sorted(options.items())))
    except TypeError:  # an unhashable value: build it anew
        return _new_codec(options)


@lru_cache(maxsize=32)
def _shared_codec(options: tuple[tuple[str, Any], ...]) -> Codec:
    return _new_codec(dict(options))


def _new_codec(options: dict[str, Any]) -> Codec:
    serializer = options.get("SERIALIZER", "pickle")
    compressor = options.get("COMPRESSOR")
    min_len = options.get("COMPRESS_MIN_LEN", DEFAULT_COMPRESS_MIN_LEN)
    if not isinstance(min_len, int) or isinstance(min_len, bool) or min_len < 0:
        raise ValueError(
            f"OPTIONS['COMPRESS_MIN_LEN'] must be a whole number >= 0, not {min_len!r}."
        )
    return Codec(
        # Django's encoder: dates, decimals and UUIDs become JSON as in Django's serializers.
        JSONSerializer(DjangoJSONEncoder)
        if serializer == "json"
        else resolve(serializer, SERIALIZERS, "SERIALIZER"),
        None if compressor is None else resolve(compressor, COMPRESSORS, "COMPRESSOR"),
        compress_min_len=min_len,
    )


def caches_by_connection() -> dict[str, list[str]]:
    """The CACHES aliases on this backend, by the connection name their LOCATION gives."""
    found: dict[str, list[str]] = {}
    for alias, params in getattr(settings, "CACHES", {}).items():
        try:
            backend = import_string(params.get("BACKEND", ""))
        except ImportError:
            continue
        if isinstance(backend, type) and issubclass(backend, _backend()):
            found.setdefault(params.get("LOCATION") or "default", []).append(alias)
    return found


def _backend() -> type[Any]:
    from redis_conn.django.cache import RedisCache

    return RedisCache
