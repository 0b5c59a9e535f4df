"""django-redis's hash, set and sorted-set methods on the cache, sync and async.

Each method is written once, as a *plan*: the redis-py command to send, with the cache's keys
(``prefix:version:key``) and members serialized as values (ints as digits, sorted-set members
always serialized), and how to read the reply. :func:`command` makes the sync method from it
(``cache.sadd``) and :func:`async_twin` the async one (``cache.asadd``). Signatures, versions
(``version``, ``version_keys``, ``version_dest``) and return values are django-redis 7's;
``client=`` runs the command on a given client or pipeline (a pipeline's queued reply is
returned as it is). Field names of hashes are not serialized, as in django-redis.

Network errors are raised, IGNORE_EXCEPTIONS or not, as django-redis does for these methods.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, NamedTuple

from redis_conn.codecs import Codec


class Plan(NamedTuple):
    method: str  # the redis-py client method
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    reply: Callable[[Any], Any]


def _same(reply: Any) -> Any:
    return reply


def command(plan: Callable[..., Plan]) -> Callable[..., Any]:
    @functools.wraps(plan)
    def method(self: Any, *args: Any, client: Any = None, **kwargs: Any) -> Any:
        step = plan(self, *args, **kwargs)
        target = self._redis(client)
        reply = getattr(target, step.method)(*step.args, **step.kwargs)
        return reply if reply is target else step.reply(reply)

    method.plan = plan  # type: ignore[attr-defined]
    return method


def async_twin(sync: Callable[..., Any]) -> Callable[..., Any]:
    plan: Callable[..., Plan] = sync.plan  # type: ignore[attr-defined]

    async def method(self: Any, *args: Any, client: Any = None, **kwargs: Any) -> Any:
        step = plan(self, *args, **kwargs)
        target = self._aredis(client)
        reply = getattr(target, step.method)(*step.args, **step.kwargs)
        if reply is target:  # queued on an asyncio pipeline
            return reply
        return step.reply(await reply)

    method.__name__ = method.__qualname__ = f"a{plan.__name__}"
    method.__doc__ = f"The async twin of :meth:`{plan.__name__}`."
    return method


class StructuresMixin:
    """Hashes, sets and sorted sets on the cache's keys (mixed into ``RedisCache``)."""

    # Provided by RedisCache.
    if TYPE_CHECKING:

        @property
        def _codec(self) -> Codec: ...

    make_and_validate_key: Callable[..., str]
    _redis: Callable[[Any], Any]
    _aredis: Callable[[Any], Any]

    def _k(self, key: Any, version: int | None) -> str:
        return self.make_and_validate_key(key, version=version)

    def _ks(self, keys: Iterable[Any], version: int | None) -> list[str]:
        return [self.make_and_validate_key(key, version=version) for key in keys]

    def _v(self, value: Any) -> Any:
        return self._codec.dumps(value)

    def _z(self, member: Any) -> bytes:
        return bytes(self._codec.dumps_serialized(member))

    def _load(self, value: Any) -> Any:
        return self._codec.loads(value)

    def _loads_set(self, values: Iterable[Any]) -> set[Any]:
        return {self._codec.loads(value) for value in values}

    def _loads_list(self, values: Iterable[Any]) -> list[Any]:
        return [self._codec.loads(value) for value in values]

    def _scored(self, reply: Any, withscores: bool) -> list[Any]:
        if withscores:
            return [(self._codec.loads(member), score) for member, score in reply]
        return self._loads_list(reply)

    def _popped(self, reply: Any, count: int | None) -> Any:
        decoded = [(self._codec.loads(member), score) for member, score in reply or []]
        if count is None:
            return decoded[0] if decoded else None
        return decoded

    def _match(self, match: str | None) -> bytes | None:
        if not match:
            return None
        if self._codec.compressor is not None:
            raise ValueError(
                "sscan(match=...) cannot match members of a cache with a COMPRESSOR: a "
                "compressed member does not contain the pattern (django-redis refuses it too)."
            )
        return self._z(match)  # members are serialized, so is the pattern (as django-redis)

    # -- hashes ---------------------------------------------------------------------------

    @command
    def hset(
        self,
        key: Any,
        field: Any = None,
        value: Any = None,
        mapping: Mapping[Any, Any] | None = None,
        version: int | None = None,
    ) -> Plan:
        """Set ``field`` (or every field of ``mapping``); returns how many fields were added."""
        encoded = None if mapping is None else {f: self._v(v) for f, v in mapping.items()}
        kwargs = {"key": field, "value": None if value is None else self._v(value)}
        return Plan("hset", (self._k(key, version),), {**kwargs, "mapping": encoded}, int)

    @command
    def hget(self, key: Any, field: Any, version: int | None = None) -> Plan:
        """The value of ``field``, or None."""
        return Plan("hget", (self._k(key, version), field), {}, self._load)

    @command
    def hgetall(self, key: Any, version: int | None = None) -> Plan:
        """Every field (as str) and its value."""
        return Plan("hgetall", (self._k(key, version),), {}, self._fields)

    def _fields(self, reply: dict[Any, Any]) -> dict[str, Any]:
        return {_text(field): self._codec.loads(value) for field, value in reply.items()}

    @command
    def hdel(self, key: Any, field: Any, version: int | None = None) -> Plan:
        """Remove ``field``; returns how many fields were removed."""
        return Plan("hdel", (self._k(key, version), field), {}, int)

    @command
    def hlen(self, key: Any, version: int | None = None) -> Plan:
        return Plan("hlen", (self._k(key, version),), {}, int)

    @command
    def hkeys(self, key: Any, version: int | None = None) -> Plan:
        """The field names, as str."""
        return Plan("hkeys", (self._k(key, version),), {}, _texts)

    @command
    def hexists(self, key: Any, field: Any, version: int | None = None) -> Plan:
        return Plan("hexists", (self._k(key, version), field), {}, bool)

    # -- sets -----------------------------------------------------------------------------

    @command
    def sadd(self, key: Any, *members: Any, version: int | None = None) -> Plan:
        return Plan("sadd", (self._k(key, version), *map(self._v, members)), {}, int)

    @command
    def scard(self, key: Any, version: int | None = None) -> Plan:
        return Plan("scard", (self._k(key, version),), {}, int)

    @command
    def sdiff(self, *keys: Any, version: int | None = None) -> Plan:
        return Plan("sdiff", tuple(self._ks(keys, version)), {}, self._loads_set)

    @command
    def sdiffstore(
        self,
        dest: Any,
        *keys: Any,
        version_dest: int | None = None,
        version_keys: int | None = None,
    ) -> Plan:
        made = (self._k(dest, version_dest), *self._ks(keys, version_keys))
        return Plan("sdiffstore", made, {}, int)

    @command
    def sinter(self, *keys: Any, version: int | None = None) -> Plan:
        return Plan("sinter", tuple(self._ks(keys, version)), {}, self._loads_set)

    @command
    def sinterstore(self, dest: Any, *keys: Any, version: int | None = None) -> Plan:
        return Plan("sinterstore", tuple(self._ks((dest, *keys), version)), {}, int)

    @command
    def sismember(self, key: Any, member: Any, version: int | None = None) -> Plan:
        return Plan("sismember", (self._k(key, version), self._v(member)), {}, bool)

    @command
    def smismember(self, key: Any, *members: Any, version: int | None = None) -> Plan:
        made = (self._k(key, version), *map(self._v, members))
        return Plan("smismember", made, {}, _bools)

    @command
    def smembers(self, key: Any, version: int | None = None) -> Plan:
        return Plan("smembers", (self._k(key, version),), {}, self._loads_set)

    @command
    def smove(self, source: Any, destination: Any, member: Any, version: int | None = None) -> Plan:
        # django-redis applies ``version`` to the source only: the destination is at the
        # cache's version. Kept, so that a call moves members to the same key as before.
        made = (self._k(source, version), self._k(destination, None), self._v(member))
        return Plan("smove", made, {}, bool)

    @command
    def spop(self, key: Any, count: int | None = None, version: int | None = None) -> Plan:
        """One member (or None), or a set of ``count`` members."""
        return Plan("spop", (self._k(key, version), count), {}, self._one_or_set)

    def _one_or_set(self, reply: Any) -> Any:
        if isinstance(reply, list | set):
            return self._loads_set(reply)
        return self._load(reply)

    @command
    def srandmember(self, key: Any, count: int | None = None, version: int | None = None) -> Plan:
        """One member (or None), or a list of ``count`` members."""
        return Plan("srandmember", (self._k(key, version), count), {}, self._one_or_list)

    def _one_or_list(self, reply: Any) -> Any:
        if isinstance(reply, list):
            return self._loads_list(reply)
        return self._load(reply)

    @command
    def srem(self, key: Any, *members: Any, version: int | None = None) -> Plan:
        return Plan("srem", (self._k(key, version), *map(self._v, members)), {}, int)

    @command
    def sscan(
        self,
        key: Any,
        match: str | None = None,
        count: int | None = 10,
        version: int | None = None,
    ) -> Plan:
        """The members of one SSCAN page from cursor 0 (django-redis's ``sscan``), as a set."""
        kwargs = {"match": self._match(match), "count": count}
        return Plan("sscan", (self._k(key, version),), kwargs, self._scan_page)

    def _scan_page(self, reply: tuple[int, list[Any]]) -> set[Any]:
        return self._loads_set(reply[1])

    def sscan_iter(
        self,
        key: Any,
        match: str | None = None,
        count: int | None = 10,
        version: int | None = None,
        client: Any = None,
    ) -> Iterator[Any]:
        """Every member, by SSCAN."""
        made, pattern = self._k(key, version), self._match(match)
        for value in self._redis(client).sscan_iter(made, match=pattern, count=count):
            yield self._load(value)

    async def asscan_iter(
        self,
        key: Any,
        match: str | None = None,
        count: int | None = 10,
        version: int | None = None,
        client: Any = None,
    ) -> AsyncIterator[Any]:
        """The async twin of :meth:`sscan_iter` (``async for member in ...``)."""
        made, pattern = self._k(key, version), self._match(match)
        async for value in self._aredis(client).sscan_iter(made, match=pattern, count=count):
            yield self._load(value)

    @command
    def sunion(self, *keys: Any, version: int | None = None) -> Plan:
        return Plan("sunion", tuple(self._ks(keys, version)), {}, self._loads_set)

    @command
    def sunionstore(self, destination: Any, *keys: Any, version: int | None = None) -> Plan:
        return Plan("sunionstore", tuple(self._ks((destination, *keys), version)), {}, int)

    # -- sorted sets (members always serialized, scores as given) ----------------------------

    @command
    def zadd(
        self,
        key: Any,
        mapping: Mapping[Any, float],
        nx: bool = False,
        xx: bool = False,
        ch: bool = False,
        incr: bool = False,
        gt: bool = False,
        lt: bool = False,
        version: int | None = None,
    ) -> Plan:
        encoded = {self._z(member): score for member, score in mapping.items()}
        flags = {"nx": nx, "xx": xx, "ch": ch, "incr": incr, "gt": gt, "lt": lt}
        return Plan("zadd", (self._k(key, version), encoded), flags, _same)

    @command
    def zcard(self, key: Any, version: int | None = None) -> Plan:
        return Plan("zcard", (self._k(key, version),), {}, _same)

    @command
    def zcount(
        self, key: Any, min: float | str, max: float | str, version: int | None = None
    ) -> Plan:
        return Plan("zcount", (self._k(key, version), min, max), {}, _same)

    @command
    def zincrby(self, key: Any, amount: float, value: Any, version: int | None = None) -> Plan:
        return Plan("zincrby", (self._k(key, version), amount, self._z(value)), {}, _same)

    @command
    def zpopmax(self, key: Any, count: int | None = None, version: int | None = None) -> Plan:
        """The (member, score) with the highest score (None), or a list of ``count`` of them."""
        return Plan("zpopmax", (self._k(key, version), count), {}, self._pop(count))

    @command
    def zpopmin(self, key: Any, count: int | None = None, version: int | None = None) -> Plan:
        """The (member, score) with the lowest score (None), or a list of ``count`` of them."""
        return Plan("zpopmin", (self._k(key, version), count), {}, self._pop(count))

    def _pop(self, count: int | None) -> Callable[[Any], Any]:
        return lambda reply: self._popped(reply, count)

    def _ranged(self, withscores: bool) -> Callable[[Any], Any]:
        return lambda reply: self._scored(reply, withscores)

    @command
    def zrange(
        self,
        key: Any,
        start: int,
        end: int,
        desc: bool = False,
        withscores: bool = False,
        score_cast_func: type = float,
        version: int | None = None,
    ) -> Plan:
        kwargs = {"desc": desc, "withscores": withscores, "score_cast_func": score_cast_func}
        made = (self._k(key, version), start, end)
        return Plan("zrange", made, kwargs, self._ranged(withscores))

    @command
    def zrangebyscore(
        self,
        key: Any,
        min: float | str,
        max: float | str,
        start: int | None = None,
        num: int | None = None,
        withscores: bool = False,
        score_cast_func: type = float,
        version: int | None = None,
    ) -> Plan:
        kwargs = {"start": start, "num": num, "withscores": withscores}
        made = (self._k(key, version), min, max)
        return Plan(
            "zrangebyscore",
            made,
            {**kwargs, "score_cast_func": score_cast_func},
            self._ranged(withscores),
        )

    @command
    def zrank(
        self, key: Any, value: Any, withscore: bool = False, version: int | None = None
    ) -> Plan:
        kwargs = {"withscore": True} if withscore else {}  # redis-py < 5 has no withscore
        return Plan("zrank", (self._k(key, version), self._z(value)), kwargs, _same)

    @command
    def zrem(self, key: Any, *values: Any, version: int | None = None) -> Plan:
        return Plan("zrem", (self._k(key, version), *map(self._z, values)), {}, _same)

    @command
    def zremrangebyscore(
        self, key: Any, min: float | str, max: float | str, version: int | None = None
    ) -> Plan:
        return Plan("zremrangebyscore", (self._k(key, version), min, max), {}, _same)

    @command
    def zrevrange(
        self,
        key: Any,
        start: int,
        end: int,
        withscores: bool = False,
        score_cast_func: type = float,
        version: int | None = None,
    ) -> Plan:
        kwargs = {"withscores": withscores, "score_cast_func": score_cast_func}
        made = (self._k(key, version), start, end)
        return Plan("zrevrange", made, kwargs, self._ranged(withscores))

    @command
    def zrevrangebyscore(
        self,
        key: Any,
        max: float | str,
        min: float | str,
        start: int | None = None,
        num: int | None = None,
        withscores: bool = False,
        score_cast_func: type = float,
        version: int | None = None,
    ) -> Plan:
        kwargs = {"start": start, "num": num, "withscores": withscores}
        made = (self._k(key, version), max, min)
        return Plan(
            "zrevrangebyscore",
            made,
            {**kwargs, "score_cast_func": score_cast_func},
            self._ranged(withscores),
        )

    @command
    def zscore(self, key: Any, value: Any, version: int | None = None) -> Plan:
        return Plan("zscore", (self._k(key, version), self._z(value)), {}, _same)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _texts(values: Iterable[Any]) -> list[str]:
    return [_text(value) for value in values]


def _bools(values: Iterable[Any]) -> list[bool]:
    return [bool(value) for value in values]


#: Every data-structure method that has a plan; each gets an async twin (``a`` + name).
STRUCTURE_METHODS = tuple(
    name for name, value in vars(StructuresMixin).items() if hasattr(value, "plan")
)
for _name in STRUCTURE_METHODS:
    setattr(StructuresMixin, f"a{_name}", async_twin(getattr(StructuresMixin, _name)))
