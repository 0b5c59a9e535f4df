"""How cached values become bytes in Redis and back: a serializer, then an optional compressor.

The format is the one Django's ``RedisCache`` and django-redis write, so a cache keeps working
when the backend changes: an ``int`` (not a bool, not a subclass) is stored as its decimal
digits, so INCR works on it; anything else is serialized (pickle by default) and, when a
compressor is set and the result is at least ``min_length`` bytes, compressed. Reading tries
an integer first, then decompression (small values were left uncompressed), then the
serializer. No Django or Flask import here: the Django cache and the Flask adapters share it.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import lzma
import pickle
import zlib
from collections.abc import Callable
from typing import Any, Protocol

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
    def __init__(self, protocol: int = pickle.HIGHEST_PROTOCOL) -> None:
        self.protocol = protocol

    def dumps(self, value: Any) -> bytes:
        return pickle.dumps(value, self.protocol)

    def loads(self, data: bytes) -> Any:
        return pickle.loads(data)


class JSONSerializer:
    """JSON as UTF-8; ``encoder`` is a ``json.JSONEncoder`` subclass (Django passes its own)."""

    def __init__(self, encoder: type[json.JSONEncoder] | None = None) -> None:
        self.encoder = encoder

    def dumps(self, value: Any) -> bytes:
        return json.dumps(value, cls=self.encoder, separators=(",", ":")).encode()

    def loads(self, data: bytes) -> Any:
        return json.loads(data)


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


SERIALIZERS: dict[str, Callable[[], Serializer]] = {
    "pickle": PickleSerializer,
    "json": JSONSerializer,
}
COMPRESSORS: dict[str, Callable[[], Compressor]] = {
    "zlib": ZlibCompressor,
    "lzma": LzmaCompressor,
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
        data = self.serializer.dumps(value)
        if self.compressor is not None and len(data) >= self.compress_min_len:
            return self.compressor.compress(data)
        return data

    def loads(self, data: bytes | None) -> Any:
        if data is None:
            return None
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


def resolve(value: Any, builtins: dict[str, Callable[[], Any]], what: str) -> Any:
    """A serializer or compressor from a built-in name, a dotted path, a class or an object.

    Raises ``ValueError`` with a sentence saying what was wrong.
    """
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
        value = value()
    methods = ("dumps", "loads") if what == "SERIALIZER" else ("compress", "decompress")
    missing = [name for name in methods if not callable(getattr(value, name, None))]
    if missing:
        raise ValueError(f"{what} {value!r} has no {' or '.join(missing)} method.")
    return value
