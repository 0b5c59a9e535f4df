"""How cached values become bytes in Redis and back: a serializer, then an optional compressor.

The format is the one Django's ``RedisCache`` and django-redis write, so a cache keeps working
when the backend changes: an ``int`` (not a bool, not a subclass) is stored as its decimal
digits, so INCR works on it; anything else is serialized (pickle by default) and, when a
compressor is set and the result is at least ``min_length`` bytes, compressed. Reading tries
an integer first, then decompression (small values were left uncompressed), then the
serializer. No Django or Flask import here: the Django cache and the Flask adapters share it.

django-redis's serializer and compressor classes are accepted by their dotted paths
(:data:`DJANGO_REDIS_PATHS`) and answered by the equivalents here, which write what they write
(the same pickle protocol, JSON, msgpack, zlib, gzip, lzma, lz4 and zstd frames, compressed
above the same length), so values stay readable both ways and django-redis itself need not be
installed. msgpack, lz4 and zstd need their packages (``msgpack``, ``lz4``, ``pyzstd``).
"""

from __future__ import annotations

import contextlib
import gzip
import importlib
import inspect
import json
import lzma
import pickle
import zlib
from collections.abc import Callable
from typing import Any, NamedTuple, Protocol

_INT_START = frozenset(b"-0123456789"[i : i + 1] for i in range(11))

#: Values shorter than this many serialized bytes are stored uncompressed.
DEFAULT_COMPRESS_MIN_LEN = 1024


class Serializer(Protocol):
    def dumps(self, value: Any) -> bytes: ...

    def loads(self, data: bytes) -> Any: ...


class Compressor(Protocol):
    """``decompress`` raises ``ValueError`` for data it did not compress (a small value)."""

    def compress(self, data: bytes) -> bytes: ...

    def decompress(self, data: bytes) -> bytes: ...


class PickleSerializer:
    """Django's RedisCache pickles with the highest protocol, django-redis with the default."""

    def __init__(self, protocol: int = pickle.HIGHEST_PROTOCOL) -> None:
        self.protocol = protocol

    def dumps(self, value: Any) -> bytes:
        return pickle.dumps(value, self.protocol)

    def loads(self, data: bytes) -> Any:
        return pickle.loads(data)


class JSONSerializer:
    """JSON as UTF-8; ``encoder`` is a ``json.JSONEncoder`` subclass (Django passes its own)."""

    def __init__(
        self, encoder: type[json.JSONEncoder] | None = None, *, compact: bool = True
    ) -> None:
        self.encoder = encoder
        # django-redis writes json.dumps's default separators (", ", ": ").
        self.separators = (",", ":") if compact else None

    def dumps(self, value: Any) -> bytes:
        return json.dumps(value, cls=self.encoder, separators=self.separators).encode()

    def loads(self, data: bytes) -> Any:
        return json.loads(data)


class MsgpackSerializer:
    """MessagePack, as django-redis's MSGPackSerializer writes it (needs ``msgpack``)."""

    def __init__(self) -> None:
        self._msgpack = _optional("msgpack", "msgpack", "SERIALIZER 'msgpack'")

    def dumps(self, value: Any) -> bytes:
        return bytes(self._msgpack.dumps(value))

    def loads(self, data: bytes) -> Any:
        return self._msgpack.loads(data, raw=False)


class ZlibCompressor:
    def __init__(self, level: int = 6) -> None:
        self.level = level

    def compress(self, data: bytes) -> bytes:
        return zlib.compress(data, self.level)

    def decompress(self, data: bytes) -> bytes:
        try:
            return zlib.decompress(data)
        except zlib.error as exc:
            raise ValueError(str(exc)) from exc


class LzmaCompressor:
    def __init__(self, preset: int = 4) -> None:
        self.preset = preset

    def compress(self, data: bytes) -> bytes:
        return lzma.compress(data, preset=self.preset)

    def decompress(self, data: bytes) -> bytes:
        try:
            return lzma.decompress(data)
        except lzma.LZMAError as exc:
            raise ValueError(str(exc)) from exc


class GzipCompressor:
    def compress(self, data: bytes) -> bytes:
        # mtime=0: the same bytes for the same data, whenever it is written. Set members are
        # compressed too (sadd, smove, sismember): with the clock in the header, a member
        # written in one second was not found by a command sent in the next.
        return gzip.compress(data, mtime=0)

    def decompress(self, data: bytes) -> bytes:
        try:
            return gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as exc:  # BadGzipFile is an OSError
            raise ValueError(str(exc)) from exc


class Lz4Compressor:
    """LZ4 frames, as django-redis's Lz4Compressor writes them (needs ``lz4``)."""

    def __init__(self) -> None:
        self._frame = _optional("lz4.frame", "lz4", "COMPRESSOR 'lz4'")

    def compress(self, data: bytes) -> bytes:
        return bytes(self._frame.compress(data))

    def decompress(self, data: bytes) -> bytes:
        try:
            return bytes(self._frame.decompress(data))
        except RuntimeError as exc:  # lz4's error for data that is not a frame
            raise ValueError(str(exc)) from exc


class ZstdCompressor:
    """Zstandard frames, as django-redis's ZStdCompressor writes them (needs ``pyzstd``)."""

    def __init__(self) -> None:
        self._zstd = _optional("pyzstd", "pyzstd", "COMPRESSOR 'zstd'")

    def compress(self, data: bytes) -> bytes:
        return bytes(self._zstd.compress(data))

    def decompress(self, data: bytes) -> bytes:
        try:
            return bytes(self._zstd.decompress(data))
        except self._zstd.ZstdError as exc:
            raise ValueError(str(exc)) from exc


def _optional(module: str, package: str, what: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ValueError(
            f"{what} needs the {package} package, which is not installed: pip install {package}."
        ) from exc


SERIALIZERS: dict[str, Callable[[], Serializer]] = {
    "pickle": PickleSerializer,
    "json": JSONSerializer,
    "msgpack": MsgpackSerializer,
}
COMPRESSORS: dict[str, Callable[[], Compressor]] = {
    "zlib": ZlibCompressor,
    "gzip": GzipCompressor,
    "lzma": LzmaCompressor,
    "lz4": Lz4Compressor,
    "zstd": ZstdCompressor,
}


class Equivalent(NamedTuple):
    """What a django-redis class path stands for here."""

    name: str | None  # the built-in name; None: no compressor
    min_len: int | None = None  # the smallest length django-redis compresses


#: django-redis's classes, by dotted path. Its compressors compress values longer than their
#: ``min_length`` (15 bytes; lzma: 100), so these keep that threshold unless COMPRESS_MIN_LEN
#: says otherwise; its pickle serializer uses ``pickle.DEFAULT_PROTOCOL`` (PICKLE_VERSION).
DJANGO_REDIS_PATHS: dict[str, Equivalent] = {
    "django_redis.serializers.pickle.PickleSerializer": Equivalent("pickle"),
    "django_redis.serializers.json.JSONSerializer": Equivalent("json"),
    "django_redis.serializers.msgpack.MSGPackSerializer": Equivalent("msgpack"),
    "django_redis.compressors.identity.IdentityCompressor": Equivalent(None),
    "django_redis.compressors.zlib.ZlibCompressor": Equivalent("zlib", 16),
    "django_redis.compressors.gzip.GzipCompressor": Equivalent("gzip", 16),
    "django_redis.compressors.lzma.LzmaCompressor": Equivalent("lzma", 101),
    "django_redis.compressors.lz4.Lz4Compressor": Equivalent("lz4", 16),
    "django_redis.compressors.zstd.ZStdCompressor": Equivalent("zstd", 16),
}


class Codec:
    """Values to bytes (``dumps``) and back (``loads``), Django/django-redis compatible.

    ``loads(None)`` is None, so a client's reply can be passed straight in.
    """

    def __init__(
        self,
        serializer: Serializer | None = None,
        compressor: Compressor | None = None,
        *,
        compress_min_len: int = DEFAULT_COMPRESS_MIN_LEN,
    ) -> None:
        self.serializer: Serializer = serializer or PickleSerializer()
        self.compressor = compressor
        self.compress_min_len = compress_min_len

    def dumps(self, value: Any) -> bytes | int:
        # type() rather than isinstance(): True must stay a bool, not become 1.
        if type(value) is int:
            return value
        return self.dumps_serialized(value)

    def dumps_serialized(self, value: Any) -> bytes:
        """Serialized even when an int: sorted-set members, as django-redis stores them."""
        data = self.serializer.dumps(value)
        if self.compressor is not None and len(data) >= self.compress_min_len:
            return self.compressor.compress(data)
        return data

    def loads(self, data: bytes | str | None) -> Any:
        if data is None:
            return None
        if isinstance(data, str):  # a field name or member a client decoded
            data = data.encode()
        # Every writer stores an int as str(int); looking at the first byte first saves the
        # cost of a failed int() on every pickle (b"\x80..."), JSON text or compressed value.
        if data[:1] in _INT_START:
            try:
                return int(data)
            except ValueError:
                pass  # e.g. the JSON number 1.5
        if self.compressor is not None:
            # A ValueError: stored uncompressed, being shorter than compress_min_len.
            with contextlib.suppress(ValueError):
                data = self.compressor.decompress(data)
        return self.serializer.loads(data)

    def __repr__(self) -> str:
        compressor = type(self.compressor).__name__ if self.compressor else None
        return f"<Codec {type(self.serializer).__name__} compressor={compressor}>"


def resolve(
    value: Any,
    builtins: dict[str, Callable[[], Any]],
    what: str,
    options: dict[str, Any] | None = None,
) -> Any:
    """A serializer or compressor from a built-in name, a dotted path, a class or an object.

    A class whose constructor takes ``options`` (django-redis's base classes do) is given
    ``options``, the cache's OPTIONS. Raises ``ValueError`` with a sentence saying what was
    wrong.
    """
    if isinstance(value, str) and value in DJANGO_REDIS_PATHS:
        value = DJANGO_REDIS_PATHS[value].name
    if isinstance(value, str):
        if value in builtins:
            return builtins[value]()
        if "." not in value:
            names = ", ".join(repr(name) for name in builtins)
            raise ValueError(f"{what} {value!r} is not one of {names}, nor a dotted path.")
        module_name, _, attribute = value.rpartition(".")
        try:
            value = getattr(importlib.import_module(module_name), attribute)
        except (ImportError, AttributeError) as exc:
            raise ValueError(f"{what} {value!r} cannot be imported: {exc}.") from exc
    if isinstance(value, type):
        takes_options = "options" in inspect.signature(value).parameters
        value = value(options=options or {}) if takes_options else value()
    methods = ("dumps", "loads") if what == "SERIALIZER" else ("compress", "decompress")
    missing = [name for name in methods if not callable(getattr(value, name, None))]
    if missing:
        raise ValueError(f"{what} {value!r} has no {' or '.join(missing)} method.")
    return value
