"""The OPTIONS of redis_conn's cache backend: checked, and turned into a codec.

One place that says what is wrong with a cache's OPTIONS (the system checks show it, the
backend raises it at first use), django-redis's ``DJANGO_REDIS_*`` settings that fill in
what OPTIONS leaves out. Imports nothing of the backend itself.
"""

from __future__ import annotations

import pickle
from functools import lru_cache
from typing import Any, NamedTuple

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder

from redis_conn.codecs import (
    COMPRESSORS,
    DEFAULT_COMPRESS_MIN_LEN,
    DJANGO_REDIS_PATHS,
    SERIALIZERS,
    Codec,
    JSONSerializer,
    PickleSerializer,
    resolve,
)

__all__ = [
    "OPTION_KEYS",
    "ErrorPolicy",
    "codec",
    "error_policy",
    "option_problems",
    "scan_itersize",
]

OPTION_KEYS = (
    "SERIALIZER",
    "COMPRESSOR",
    "COMPRESS_MIN_LEN",
    "PICKLE_VERSION",
    "IGNORE_EXCEPTIONS",
    "LOG_IGNORED_EXCEPTIONS",
)
_FLAGS = ("IGNORE_EXCEPTIONS", "LOG_IGNORED_EXCEPTIONS")
DJANGO_REDIS_LOGGER = "django_redis.cache"  # django-redis's logger when none is set
# What the cache is: a settings file moved over from django-redis may keep it, unchanged.
DJANGO_REDIS_DEFAULT_CLIENT = "django_redis.client.DefaultClient"

# django-redis's OPTIONS that have a place here, and where: said with E020 so that moving a
# settings file over shows what to move, instead of "unknown key" alone.
_DJANGO_REDIS_KEYS = {
    "CLIENT_CLASS": "redis_conn's cache has one client, django-redis's DefaultClient "
    "behaviour on the connection LOCATION names (herd, sharding and Sentinel clients are not "
    "provided; Sentinel is a connection setting); remove CLIENT_CLASS, or name "
    "django_redis.client.DefaultClient",
    "CONNECTION_POOL_KWARGS": "pool settings belong to the connection: "
    "REDIS_CONNECTIONS[LOCATION]['MAX_CONNECTIONS'] and its other keys",
    "CONNECTION_POOL_CLASS": "the connection's pool is redis_conn's; see MAX_CONNECTIONS and "
    "BLOCKING in REDIS_CONNECTIONS",
    "PASSWORD": "put the password in the connection's URL in REDIS_CONNECTIONS",
    "SOCKET_TIMEOUT": "set SOCKET_TIMEOUT on the connection in REDIS_CONNECTIONS",
    "SOCKET_CONNECT_TIMEOUT": "set SOCKET_CONNECT_TIMEOUT on the connection in REDIS_CONNECTIONS",
    "REDIS_CLIENT_KWARGS": "client keyword arguments go in the connection's OPTIONS in "
    "REDIS_CONNECTIONS",
    "CLOSE_CONNECTION": "the pool belongs to the process, not to the cache; remove it",
}


def option_problems(options: object) -> list[str]:
    """What is wrong with a cache's OPTIONS, as sentences (the system checks show them)."""
    if not isinstance(options, dict):
        return [f"OPTIONS must be a dict, not {type(options).__name__}."]
    if not options:
        return []
    problems = [
        _unknown(key)
        for key in options
        if key not in OPTION_KEYS
        and not (key == "CLIENT_CLASS" and options[key] == DJANGO_REDIS_DEFAULT_CLIENT)
    ]
    try:
        codec(options)
    except ValueError as exc:
        problems.append(str(exc))
    problems.extend(
        f"OPTIONS[{flag!r}] must be True or False, not {options[flag]!r}."
        for flag in _FLAGS
        if not isinstance(options.get(flag, False), bool)
    )
    return problems


def _unknown(key: str) -> str:
    if key in _DJANGO_REDIS_KEYS:
        return f"OPTIONS has django-redis's key {key!r}: {_DJANGO_REDIS_KEYS[key]}."
    return f"OPTIONS has an unknown key {key!r}; the known keys are {', '.join(OPTION_KEYS)}."


class ErrorPolicy(NamedTuple):
    """What a network error does: raise, or read as a miss (and how that is logged)."""

    ignore: bool
    log_ignored: bool  # django-redis's record ("Exception ignored", with the traceback)
    logger_name: str


def error_policy(options: dict[str, Any]) -> ErrorPolicy:
    """OPTIONS first, then django-redis's global settings, as django-redis reads them."""

    def flag(key: str) -> bool:
        if key in options:
            return bool(options[key])
        return bool(getattr(settings, f"DJANGO_REDIS_{key}", False))

    logger_name = getattr(settings, "DJANGO_REDIS_LOGGER", None) or DJANGO_REDIS_LOGGER
    return ErrorPolicy(flag("IGNORE_EXCEPTIONS"), flag("LOG_IGNORED_EXCEPTIONS"), logger_name)


def scan_itersize(default: int) -> int:
    """SCAN's COUNT: django-redis's DJANGO_REDIS_SCAN_ITERSIZE when set."""
    value = getattr(settings, "DJANGO_REDIS_SCAN_ITERSIZE", None)
    return value if isinstance(value, int) and value > 0 else default


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
    django_redis_compressor = DJANGO_REDIS_PATHS.get(compressor) if compressor else None
    if django_redis_compressor is not None:
        compressor = django_redis_compressor.name
    default_min_len = (django_redis_compressor and django_redis_compressor.min_len) or (
        DEFAULT_COMPRESS_MIN_LEN
    )
    min_len = options.get("COMPRESS_MIN_LEN", default_min_len)
    if not isinstance(min_len, int) or isinstance(min_len, bool) or min_len < 0:
        raise ValueError(
            f"OPTIONS['COMPRESS_MIN_LEN'] must be a whole number >= 0, not {min_len!r}."
        )
    return Codec(
        _serializer(serializer, options),
        None if compressor is None else resolve(compressor, COMPRESSORS, "COMPRESSOR", options),
        compress_min_len=min_len,
    )


def _serializer(serializer: Any, options: dict[str, Any]) -> Any:
    if "SERIALIZER" not in options and options.get("COMPRESSOR") in DJANGO_REDIS_PATHS:
        # A django-redis settings file: its default serializer, so that the bytes match.
        serializer = "django_redis.serializers.pickle.PickleSerializer"
    if isinstance(serializer, str) and serializer in DJANGO_REDIS_PATHS:
        name = DJANGO_REDIS_PATHS[serializer].name
        if name == "pickle":  # django-redis pickles with the default protocol, not the highest
            return PickleSerializer(_pickle_protocol(options, pickle.DEFAULT_PROTOCOL))
        if name == "json":
            return JSONSerializer(DjangoJSONEncoder, compact=False)
        serializer = name
    if serializer == "pickle":
        return PickleSerializer(_pickle_protocol(options, pickle.HIGHEST_PROTOCOL))
    if serializer == "json":
        # Django's encoder: dates, decimals and UUIDs become JSON as in Django's serializers.
        return JSONSerializer(DjangoJSONEncoder)
    return resolve(serializer, SERIALIZERS, "SERIALIZER", options)


def _pickle_protocol(options: dict[str, Any], default: int) -> int:
    version = options.get("PICKLE_VERSION", default)
    if isinstance(version, bool) or not isinstance(version, int):
        raise ValueError(f"OPTIONS['PICKLE_VERSION'] must be a whole number, not {version!r}.")
    if version > pickle.HIGHEST_PROTOCOL:
        raise ValueError(
            f"OPTIONS['PICKLE_VERSION'] is {version}, higher than this Python's "
            f"pickle.HIGHEST_PROTOCOL ({pickle.HIGHEST_PROTOCOL})."
        )
    return version
