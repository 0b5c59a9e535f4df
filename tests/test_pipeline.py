"""redis_conn.pipeline against real servers: futures, nesting, batching, failures, interrupts."""

from __future__ import annotations

import contextlib
import importlib
import os
import re
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ExecAbortError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from redis_conn import ConnectionNotFound, PipelineError, ReplyNotUnderstood, ResultNotReady
from redis_conn.pipeline import Future, Pipeline, pipeline
from redis_conn.registry import connections

try:
    from servers import wait_until
except ModuleNotFoundError:  # tests/ imported as a package
    from tests.servers import wait_until

# The module, not the function the package may re-export under the same name.
pipeline_module = importlib.import_module("redis_conn.pipeline")

Configure = Callable[[dict[str, Any]], None]


@pytest.fixture
def configure() -> Iterator[Configure]:
    """Configure the process-wide registry for one test; back to the embedded default after."""
    yield connections.configure
    connections.configure(None)


@pytest.fixture(params=["concurrent", "serial"])
def execution(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run multi-backend tests with batches on backend threads, and one after another."""
    if request.param == "serial":
        monkeypatch.setattr(pipeline_module._threads, "max_workers", 0)
    return str(request.param)


@pytest.fixture
def two_backends(configure: Configure, redis_server: Any, redis_server_b: Any) -> None:
    configure(
        {
            "default": {"URL": redis_server.url},
            "messages": {"ALIAS": "default"},
            "users": {"URL": redis_server_b.url},
        }
    )


def raw_get(server: Any, key: str) -> Any:
    with server.client() as raw:
        return raw.get(key)


# -- futures ---------------------------------------------------------------------------------


def test_future_before_and_after_execute(two_backends: None) -> None:
    p = pipeline(name="default")
    f = p.set("k", "v")
    assert isinstance(f, Future)
    assert not f.done()
    with pytest.raises(ResultNotReady) as info:
        f.result  # noqa: B018
    assert str(info.value) == "'default': SET k has no result yet: its pipeline has not executed."
    p.execute()
    assert f.done()
    assert f.result is True
    assert repr(f) == "<Future 'default': SET k done>"


def test_contract_example(two_backends: None, redis_server: Any, redis_server_b: Any) -> None:
    def set_name(uid: int, name: str, pipe: Pipeline | None = None) -> Future[int]:
        with pipeline(pipe, name="users", autocommit=True) as p:
            return p.hset(f"u{{{uid}}}", "name", name)

    f = set_name(1, "joe")
    assert f.result == 1

    with pipeline(name="messages") as root:
        f1 = set_name(2, "ann", root)
        f2 = root.lpush("inbox", "hi")
        assert not f1.done() and not f2.done()
        root.execute()
    assert (f1.result, f2.result) == (1, 1)
    with redis_server_b.client() as raw:
        assert raw.hget("u{2}", "name") == b"ann"
    with redis_server.client() as raw:
        assert raw.lrange("inbox", 0, -1) == [b"hi"]


COMMANDS: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = [
    ("set", ("s", "v"), {}),
    ("get", ("s",), {}),
    ("get", ("missing",), {}),
    ("hset", ("h",), {"mapping": {"a": 1, "b": "x"}}),
    ("hgetall", ("h",), {}),
    ("hgetall", ("missing",), {}),
    ("zadd", ("z", {"m1": 1.5, "m2": 2}), {}),
    ("zrange", ("z", 0, -1), {"withscores": True}),
    ("zscore", ("z", "m1"), {}),
    ("incrbyfloat", ("f", 1.25), {}),
    ("exists", ("s", "h", "nope"), {}),
    ("expire", ("s", 100), {}),
    ("ttl", ("s",), {}),
    ("smembers", ("missing",), {}),
    ("sadd", ("set1", "a", "b"), {}),
    ("smembers", ("set1",), {}),
    ("mget", (["s", "missing"],), {}),
    ("mget", ([],), {}),
    ("info", ("server",), {}),
    ("type", ("h",), {}),
    ("lpush", ("l", 1, 2, 3), {}),
    ("lrange", ("l", 0, -1), {}),
    ("ping", (), {}),
    ("execute_command", ("ECHO", "raw"), {}),
]


def comparable(name: str, value: Any) -> Any:
    if name == "info":  # uptime and such move between the two calls
        return sorted(value)
    return value


@pytest.mark.parametrize(
    "options",
    [{}, {"decode_responses": True}, {"protocol": 3}, {"protocol": 3, "decode_responses": True}],
    ids=["resp2", "resp2-decoded", "resp3", "resp3-decoded"],
)
@pytest.mark.parametrize("transaction", [False, True], ids=["plain", "multi"])
def test_replies_are_parsed_as_on_the_plain_client(
    configure: Configure, redis_server: Any, options: dict[str, Any], transaction: bool
) -> None:
    configure({"default": {"URL": redis_server.url, "OPTIONS": options}})
    client = connections.get("default")
    expected = [
        comparable(name, getattr(client, name)(*args, **kwargs)) for name, args, kwargs in COMMANDS
    ]
    client.flushall()
    with pipeline(name="default", transaction=transaction) as p:
        futures = [getattr(p, name)(*args, **kwargs) for name, args, kwargs in COMMANDS]
        p.execute()
    got = [comparable(name, f.result) for (name, _, _), f in zip(COMMANDS, futures, strict=True)]
    assert got == expected


@pytest.mark.parametrize(
    ("method", "message"),
    [
        ("watch", "WATCH needs replies before MULTI"),
        ("scan_iter", "it needs each reply before sending the next command"),
        ("select", "it changes the state of a pooled connection"),
        ("auth", "it changes the state of a pooled connection"),
        ("register_script", "register the script on get_redis(name)"),
        ("shutdown", "SHUTDOWN has no reply"),
    ],
)
def test_methods_that_cannot_be_batched_are_not_there(
    two_backends: None, method: str, message: str
) -> None:
    p = pipeline()
    with pytest.raises(
        AttributeError, match=rf"^{method}\(\) is not available .*{re.escape(message)}"
    ):
        getattr(p, method)
    assert not hasattr(p, method)


@pytest.mark.parametrize("method", ["multi", "reset", "pipeline", "transaction", "pubsub", "lock"])
def test_redis_py_pipeline_and_client_methods_are_not_commands(
    two_backends: None, method: str
) -> None:
    assert not hasattr(pipeline(), method)


def test_item_assignment_and_membership_are_refused(two_backends: None) -> None:
    p = pipeline()
    with pytest.raises(TypeError, match=r"queue p.set"):
        p["k"] = "v"  # type: ignore[index]
    with pytest.raises(TypeError, match=r"queue p.exists"):
        "k" in p  # noqa: B015
    assert bool(p) is True  # empty, yet not falsy


# -- arguments fail at once ------------------------------------------------------------------


def test_pipe_that_is_not_a_pipeline(two_backends: None) -> None:
    raw = connections.get("default").pipeline()
    with pytest.raises(TypeError) as info:
        pipeline(raw)  # type: ignore[arg-type]
    assert str(info.value) == (
        "pipeline(pipe=...) takes a redis_conn pipeline or None, not "
        "redis_conn.named_clients.NamedPipeline."
    )
    with pytest.raises(TypeError, match=r"not builtins.str"):
        pipeline("users")  # type: ignore[arg-type]


def test_unconfigured_name_fails_at_once(two_backends: None) -> None:
    with pytest.raises(ConnectionNotFound, match="'nope' is not configured"):
        pipeline(name="nope")
    root = pipeline()
    with pytest.raises(ConnectionNotFound, match="'nope' is not configured"):
        pipeline(root, name="nope")
    with pytest.raises(ConnectionNotFound, match="'nope' is not configured"):
        root["nope"]


def test_nested_transaction_needs_a_transactional_root(two_backends: None) -> None:
    with pytest.raises(ValueError, match="the root pipeline was created with transaction=False"):
        pipeline(pipeline(), transaction=True)
    assert pipeline(pipeline(transaction=True), transaction=True) is not None


# -- nesting and batching --------------------------------------------------------------------


def test_nesting_to_any_depth_across_names_keeps_call_order(
    two_backends: None, execution: str, redis_server: Any, redis_server_b: Any
) -> None:
    with pipeline(name="default") as root:
        root.rpush("order", 1)
        with pipeline(root, name="users", autocommit=True) as a:
            a.rpush("order", "b1")
            with pipeline(a, name="messages", autocommit=True) as b:
                b.rpush("order", 2)
                with pipeline(b, name="users") as c:
                    last_b = c.rpush("order", "b2")
                    c.execute()  # keeps its commands for the root; sends nothing
                assert not last_b.done()
            root.rpush("order", 3)
        assert len(root) == 5
        assert raw_get(redis_server, "order") is None
        root.execute()
    assert last_b.result == 2
    with redis_server.client() as raw:
        assert raw.lrange("order", 0, -1) == [b"1", b"2", b"3"]
    with redis_server_b.client() as raw:
        assert raw.lrange("order", 0, -1) == [b"b1", b"b2"]


def test_aliases_of_one_connection_are_one_batch(two_backends: None, execution: str) -> None:
    with pipeline(name="default") as root:
        same = [root.client_id(), root["messages"].client_id(), root.client_id()]
        other = root["users"].client_id()
        root.execute()
    # One connection answered all three: one batch, sent on one socket.
    assert len({f.result for f in same}) == 1
    assert isinstance(other.result, int)  # another server: its own batch


def test_one_backend_runs_in_the_calling_thread_others_on_their_backend_threads(
    two_backends: None,
) -> None:
    def thread_name(response: Any, **options: Any) -> str:
        return threading.current_thread().name

    for name in ("default", "users"):
        connections.get(name).set_response_callback("ECHO", thread_name)
    here = threading.current_thread().name

    with pipeline() as p:
        alone = p.echo("x")
        p.execute()
    assert alone.result == here

    threads_before = threading.active_count()
    for _ in range(20):
        with pipeline() as p:
            first, second = p.echo("x"), p["users"].echo("x")
            p.execute()
        assert first.result == here
        assert second.result.startswith("redis_conn-pipeline-users")
    # The backend's threads are made once and reused: no thread per call.
    assert threading.active_count() - threads_before <= 1


def blocked_in_command(server: Any, client_name: str) -> bool:
    """Whether a connection named ``client_name`` waits in a blocking command on ``server``."""
    with server.client() as raw:
        return any(c["name"] == client_name and "b" in c["flags"] for c in raw.client_list())


def test_backends_run_concurrently(
    configure: Configure, redis_server: Any, redis_server_b: Any, execution: str
) -> None:
    # Two BLPOPs with no timeout: neither returns before the test pushes to its list. So
    # both waiting on their servers at the same moment proves the batches ran concurrently,
    # whatever the machine's speed; one after another, the second is sent only after the
    # first returned.
    name = f"concurrency-{execution}-{os.getpid()}"
    servers = {"default": redis_server, "users": redis_server_b}
    configure(
        {
            backend: {"URL": server.url, "SOCKET_TIMEOUT": 120, "OPTIONS": {"client_name": name}}
            for backend, server in servers.items()
        }
    )
    replies: list[Any] = []

    def run_pipeline() -> None:
        with pipeline() as p:
            waits = [p.blpop(["q"], timeout=0), p["users"].blpop(["q"], timeout=0)]
            p.execute()
        replies.extend(f.result for f in waits)

    def push(backend: str) -> None:
        with servers[backend].client() as raw:
            raw.rpush("q", f"for-{backend}")

    def waiting(backend: str) -> bool:
        return blocked_in_command(servers[backend], name)

    thread = threading.Thread(target=run_pipeline, daemon=True)
    thread.start()
    try:
        if execution == "concurrent":
            wait_until(
                lambda: all(waiting(backend) for backend in servers),
                30,
                lambda: (
                    f"both BLPOPs waiting at once; waiting now: {list(filter(waiting, servers))}"
                ),
            )
            for backend in servers:
                push(backend)
        else:
            first = wait_until(
                lambda: next(filter(waiting, servers), None), 30, lambda: "a BLPOP waiting"
            )
            second = next(backend for backend in servers if backend != first)
            for _ in range(20):  # while the first waits, the second is not sent
                assert not waiting(second)
            push(first)
            wait_until(lambda: waiting(second), 30, lambda: f"the BLPOP on {second!r} waiting")
            push(second)
        thread.join(timeout=30)
        assert [list(reply) for reply in replies] == [[b"q", b"for-default"], [b"q", b"for-users"]]
    finally:
        for backend in servers:  # a failed test must not leave the thread blocked
            push(backend)
        thread.join(timeout=30)


def test_executor_is_rebuilt_in_a_forked_child(two_backends: None) -> None:
    with pipeline() as p:
        p.set("parent", 1), p["users"].set("parent", 1)
        p.execute()
    parent_threads = connections.get("users")._redis_conn_threads  # type: ignore[union-attr]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # fork with threads (3.12+)
        pid = os.fork()
    if pid == 0:  # the child: any failure is its exit status
        status = 1
        try:
            # The child's registry makes new clients, and with them new backend threads.
            if getattr(connections.get("users"), "_redis_conn_threads", None) is None:
                with pipeline() as p:
                    a, b = p.incr("child"), p["users"].incr("child")
                    p.execute()
                status = 0 if (a.result, b.result) == (1, 1) else 2
        finally:
            os._exit(status)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert raw_get_via(connections.get("users"), "child") == b"1"
    assert connections.get("users")._redis_conn_threads is parent_threads  # type: ignore[union-attr]


def raw_get_via(client: Any, key: str) -> Any:
    return client.get(key)


# -- execute, discard, with blocks -----------------------------------------------------------


def test_execute_sends_each_command_once(two_backends: None, execution: str) -> None:
    p = pipeline()
    first = p.incr("n")
    p["users"].incr("n")
    assert len(p) == 2
    p.execute()
    assert len(p) == 0
    p.execute()  # nothing queued: nothing sent
    second = p.incr("n")
    p.execute()
    assert (first.result, second.result) == (1, 2)
    assert connections.get("users").get("n") == b"1"


def test_exception_in_the_with_block_sends_nothing(two_backends: None, redis_server: Any) -> None:
    with pytest.raises(ZeroDivisionError), pipeline(autocommit=True) as p:
        f = p.set("k", "v")
        p["users"].set("k", "v")
        1 / 0  # noqa: B018
    assert raw_get(redis_server, "k") is None
    assert connections.get("users").get("k") is None
    assert f.done()
    with pytest.raises(ResultNotReady) as info:
        f.result  # noqa: B018
    assert str(info.value) == (
        "'default': SET k will never have a result: it was discarded because an exception "
        "was raised in its pipeline's with block; nothing was sent."
    )


def test_exception_in_a_nested_block_discards_only_that_block(
    two_backends: None, redis_server: Any
) -> None:
    with pipeline() as root:
        kept = root.set("kept", 1)
        with pytest.raises(KeyError), pipeline(root, name="users", autocommit=True) as p:
            dropped = p.set("dropped", 1)
            raise KeyError("boom")
        assert len(root) == 1
        root.execute()
    assert kept.result is True
    assert dropped.done()
    assert connections.get("users").get("dropped") is None


def test_leaving_without_execute_sends_nothing(two_backends: None, redis_server: Any) -> None:
    with pipeline() as p:
        f = p.set("k", "v")
    assert raw_get(redis_server, "k") is None
    with pytest.raises(ResultNotReady, match="with block ended without execute"):
        f.result  # noqa: B018

    with pipeline() as root:
        with pipeline(root) as nested:  # not autocommit, not executed: its commands go
            nested.set("nested", 1)
        with pipeline(root, autocommit=True) as kept:
            kept.set("kept", 1)
        root.execute()
    assert raw_get(redis_server, "nested") is None
    assert raw_get(redis_server, "kept") == b"1"


def test_autocommit_root_executes_at_the_end_of_its_block(
    two_backends: None, execution: str
) -> None:
    with pipeline(autocommit=True) as p:
        a, b = p.set("k", 1), p["users"].set("k", 2)
    assert (a.result, b.result) == (True, True)


def test_discard_settles_queued_futures(two_backends: None, redis_server: Any) -> None:
    root = pipeline()
    a, b = root.set("k", 1), root["users"].set("k", 2)
    root.discard()
    assert len(root) == 0 and a.done() and b.done()
    with pytest.raises(ResultNotReady, match="because discard\\(\\) was called"):
        b.result  # noqa: B018
    root.execute()
    assert raw_get(redis_server, "k") is None


def test_request_pipeline_surface(two_backends: None, execution: str) -> None:
    """What the Django/Flask request pipeline uses: views, len, several executes, a hand-off."""
    root = pipeline()
    hits = root.incr("hits")
    log = root["messages"].lpush("log", "seen")
    root["users"].incr("hits")
    assert len(root) == 3 and len(root["users"]) == 3
    root.execute()
    assert (hits.result, log.result) == (1, 1)
    again = root["users"].incr("hits")
    worker = threading.Thread(target=root.execute)  # what asyncio.to_thread does
    worker.start()
    worker.join()
    assert again.result == 2


def test_roots_in_concurrent_threads_never_share_commands(
    two_backends: None, execution: str
) -> None:
    errors: list[BaseException] = []

    def request(i: int) -> None:
        try:
            for j in range(20):
                with pipeline(autocommit=True) as p:
                    mine = p.rpush(f"list{i}", j)
                    theirs = p["users"].rpush(f"list{i}", j)
                assert (mine.result, theirs.result) == (j + 1, j + 1)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=request, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


# -- failures --------------------------------------------------------------------------------


def test_a_command_error_settles_only_its_own_future(two_backends: None, execution: str) -> None:
    connections.get("default").set("str", "x")
    with pipeline() as p:
        before = p.incr("n")
        wrong = p.hset("str", "field", "s3cret-value")
        after = p.incr("n")
        other = p["users"].incr("n")
        with pytest.raises(PipelineError) as info:
            p.execute()
    assert (before.result, after.result, other.result) == (1, 2, 1)
    with pytest.raises(ResponseError) as cmd:
        wrong.result  # noqa: B018
    assert str(cmd.value) == (
        "'default': HSET str: WRONGTYPE Operation against a key holding the wrong kind of value"
    )
    assert info.value.errors == {"default": cmd.value}
    assert info.value.failed_commands == ["'default': HSET str"]
    assert str(info.value) == (
        "Pipeline failed on 'default': ResponseError: 'default': HSET str: WRONGTYPE Operation "
        "against a key holding the wrong kind of value. 1 command failed: 'default': HSET str."
    )
    assert "s3cret" not in str(info.value)


def test_a_failing_backend_never_stops_the_others(
    configure: Configure, redis_server: Any, killable_server: Any, execution: str
) -> None:
    configure(
        {
            "default": {"URL": redis_server.url},
            "dead": {"URL": killable_server.url, "RETRY": 0, "SOCKET_CONNECT_TIMEOUT": 0.5},
        }
    )
    killable_server.kill()
    with pipeline(name="dead") as p:
        lost = [p.set("k", "secret-1"), p.incr("n")]
        fine = p["default"].set("k", "v")
        with pytest.raises(PipelineError) as info:
            p.execute()
    assert fine.result is True
    for f in lost:
        with pytest.raises(RedisConnectionError):
            f.result  # noqa: B018
    assert list(info.value.errors) == ["dead"]
    assert isinstance(info.value.errors["dead"], RedisConnectionError)
    assert info.value.failed_commands == ["'dead': SET k", "'dead': INCRBY n"]
    assert str(info.value).startswith("Pipeline failed on 'dead': ConnectionError: ")
    assert "secret-1" not in str(info.value)


def test_backend_errors_are_keyed_by_the_first_name_queued(
    configure: Configure, killable_server: Any
) -> None:
    configure({"db": {"URL": killable_server.url, "RETRY": 0}, "alias": {"ALIAS": "db"}})
    killable_server.kill()
    p = pipeline(name="alias")
    p.get("a"), p["db"].get("b")
    with pytest.raises(PipelineError) as info:
        p.execute()
    assert list(info.value.errors) == ["alias"]
    assert info.value.failed_commands == ["'alias': GET a", "'db': GET b"]


# -- transactions ----------------------------------------------------------------------------


def exec_calls(server: Any) -> int:
    with server.client() as raw:
        stats = raw.info("commandstats")
    return int(stats.get("cmdstat_exec", {}).get("calls", 0))


def test_transaction_wraps_each_backend_in_multi_exec(
    two_backends: None, execution: str, redis_server: Any, redis_server_b: Any
) -> None:
    before = exec_calls(redis_server), exec_calls(redis_server_b)
    with pipeline(transaction=True) as p:
        a, b, c = p.incr("n"), p["messages"].incr("n"), p["users"].hgetall("none")
        p.execute()
    assert (a.result, b.result, c.result) == (1, 2, {})
    assert (exec_calls(redis_server), exec_calls(redis_server_b)) == (
        before[0] + 1,
        before[1] + 1,
    )


def test_transaction_queueing_error_aborts_only_its_backend(
    two_backends: None, execution: str, redis_server: Any
) -> None:
    with pipeline(transaction=True) as p:
        applied = p.set("a", 1)
        bad = p.execute_command("SET", "b")  # wrong number of arguments: EXECABORT
        elsewhere = p["users"].set("a", 1)
        with pytest.raises(PipelineError) as info:
            p.execute()
    assert elsewhere.result is True
    with pytest.raises(ExecAbortError):
        applied.result  # noqa: B018
    with pytest.raises(ResponseError, match=r"^'default': SET b: wrong number of arguments"):
        bad.result  # noqa: B018
    assert raw_get(redis_server, "a") is None  # atomic: nothing of the batch ran
    assert list(info.value.errors) == ["default"]
    assert info.value.failed_commands == ["'default': SET a", "'default': SET b"]


def test_transaction_runtime_error_settles_only_its_future(
    two_backends: None, redis_server: Any
) -> None:
    connections.get("default").set("str", "x")
    with pipeline(transaction=True) as p:
        ok, wrong, ok2 = p.incr("n"), p.lpush("str", 1), p.incr("n")
        with pytest.raises(PipelineError):
            p.execute()
    assert (ok.result, ok2.result) == (1, 2)
    with pytest.raises(ResponseError, match=r"^'default': LPUSH str: WRONGTYPE"):
        wrong.result  # noqa: B018


# -- every kind of connection ----------------------------------------------------------------


def kinds(redis_server: Any, redis_sentinel: Any, redis_cluster: Any) -> dict[str, Any]:
    return {
        "standalone": {"URL": redis_server.url},
        "unix": {"URL": redis_server.unix_url},
        "sentinel": {
            "SENTINELS": redis_sentinel.sentinels,
            "SERVICE_NAME": redis_sentinel.service_name,
        },
        "cluster": {"URL": redis_cluster.url, "CLUSTER": True},
        "fake": {"FAKE": True},
    }


@pytest.mark.parametrize("kind", ["standalone", "unix", "sentinel", "cluster", "fake"])
@pytest.mark.parametrize("transaction", [False, True], ids=["plain", "multi"])
def test_every_connection_kind(
    configure: Configure,
    redis_server: Any,
    redis_sentinel: Any,
    redis_cluster: Any,
    kind: str,
    transaction: bool,
) -> None:
    configure(
        {"default": {"FAKE": True}, kind: kinds(redis_server, redis_sentinel, redis_cluster)[kind]}
    )
    # One hash tag, so that a cluster transaction stays in one slot.
    with pipeline(name=kind, transaction=transaction) as p:
        results = [
            p.set("{t}a", 1),
            p.incr("{t}a"),
            p.hset("{t}h", mapping={"x": 1}),
            p.hgetall("{t}h"),
            p.get("{t}missing"),
        ]
        p.execute()
    assert [f.result for f in results] == [True, 2, 1, {b"x": b"1"}, None]


def test_cluster_batch_spans_slots_and_reports_command_errors(
    configure: Configure, redis_cluster: Any, redis_server: Any, execution: str
) -> None:
    configure(
        {
            "default": {"URL": redis_server.url},
            "cache": {"URL": redis_cluster.url, "CLUSTER": True},
            "cache2": {"ALIAS": "cache"},
        }
    )
    keys = [f"key{i}" for i in range(30)]  # spread over all three primaries
    with pipeline(name="cache") as p:
        sets = [p.set(k, k) for k in keys]
        gets = [p["cache2"].get(k) for k in keys]
        p.lpush("key0", 1)  # WRONGTYPE
        local = p["default"].incr("n")
        with pytest.raises(PipelineError) as info:
            p.execute()
    assert all(f.result is True for f in sets)
    assert [f.result for f in gets] == [k.encode() for k in keys]
    assert local.result == 1
    assert info.value.failed_commands == ["'cache': LPUSH key0"]
    assert isinstance(info.value.errors["cache"], ResponseError)


# -- blocking commands, timeouts and interrupts ----------------------------------------------


def test_blocking_command_in_a_batch_returns_none_on_timeout(two_backends: None) -> None:
    with pipeline() as p:
        before, popped, after = p.set("k", 1), p.blpop(["nothing"], timeout=0.2), p.get("k")
        p.execute()
    assert (before.result, popped.result, after.result) == (True, None, b"1")


def connection_of(name: str) -> Any:
    """The connection the next batch on ``name`` will use (the pool hands back the last one)."""
    pool = connections.get(name).connection_pool
    conn = pool.get_connection()
    pool.release(conn)
    return conn


@contextlib.contextmanager
def interrupted_second_read(conn: Any) -> Iterator[None]:
    """KeyboardInterrupt on the connection's second reply read: a batch cut between replies."""
    real_read = conn.read_response
    reads = 0

    def read_response(*args: Any, **kwargs: Any) -> Any:
        nonlocal reads
        reads += 1
        if reads == 2:
            raise KeyboardInterrupt
        return real_read(*args, **kwargs)

    conn.read_response = read_response
    try:
        yield
    finally:
        del conn.read_response


def test_keyboard_interrupt_between_replies_closes_the_connection(
    two_backends: None, execution: str
) -> None:
    with pipeline() as p:
        first_id = p.client_id()
        p.execute()
    conn = connection_of("default")
    with interrupted_second_read(conn), pipeline() as p:
        a, b, c = p.set("a", "A"), p.set("b", "B"), p.incr("c")
        elsewhere = p["users"].set("b", "elsewhere")
        with pytest.raises(KeyboardInterrupt):
            p.execute()
    # Every future settled; the other backend finished before the interrupt came through.
    assert a.result is True
    assert elsewhere.result is True
    for f in (b, c):
        with pytest.raises(RedisConnectionError, match="interrupted by KeyboardInterrupt"):
            f.result  # noqa: B018
    # The next commands get their own answers, on a new connection.
    with pipeline() as p:
        echo, value, second_id = p.echo("fresh"), p.get("b"), p.client_id()
        p.execute()
    assert (echo.result, value.result) == (b"fresh", b"B")
    assert second_id.result != first_id.result
    client = connections.get("default")
    assert client.echo("plain") == b"plain"
    assert client.incr("c") == 2


def test_socket_timeout_mid_batch_closes_the_connection(
    configure: Configure, redis_server: Any
) -> None:
    configure({"default": {"URL": redis_server.url, "SOCKET_TIMEOUT": 0.3, "RETRY": 0}})
    with pipeline() as p:
        a, slow, c = p.incr("a"), p.blpop(["nothing"], timeout=1), p.incr("c")
        with pytest.raises(PipelineError) as info:
            p.execute()
    assert a.result == 1
    with pytest.raises(RedisTimeoutError):
        slow.result  # noqa: B018
    with pytest.raises(RedisConnectionError, match="interrupted by TimeoutError") as later:
        c.result  # noqa: B018
    assert str(later.value) == (
        "Redis connection 'default': the batch was interrupted by TimeoutError; its connection "
        "was closed and the unanswered commands may or may not have run."
    )
    assert isinstance(info.value.errors["default"], RedisTimeoutError)
    assert info.value.failed_commands == ["'default': BLPOP nothing", "'default': INCRBY c"]
    time.sleep(1.0)  # had the socket been pooled, BLPOP's late nil would be waiting on it
    with pipeline() as p:
        echo, counters = p.echo("fresh"), p.mget(["a", "c"])
        p.execute()
    assert echo.result == b"fresh"
    # Nothing was sent again: "a" was incremented once. The server dropped the INCR queued
    # behind the BLPOP when the connection closed.
    assert counters.result == [b"1", None]


def test_error_between_replies_closes_the_connection(two_backends: None) -> None:
    def broken(response: Any, **options: Any) -> Any:
        raise ValueError("cannot parse this reply")

    connections.get("default").set_response_callback("TYPE", broken)
    with pipeline() as p:
        a, kind, c = p.set("a", 1), p.type("a"), p.incr("c")
        with pytest.raises(PipelineError) as info:
            p.execute()
    assert a.result is True
    # CONTRACT section 13: a reply the client fails to read is an unknown outcome.
    with pytest.raises(ReplyNotUnderstood) as unread:
        kind.result  # noqa: B018
    assert str(unread.value) == (
        "Redis connection 'default': TYPE was sent, then its reply could not be read "
        "(ValueError: cannot parse this reply); it may or may not have run, and it was not "
        "sent again."
    )
    assert isinstance(unread.value.__cause__, ValueError)
    with pytest.raises(RedisConnectionError, match="interrupted by ValueError"):
        c.result  # noqa: B018  # it did run: "may or may not have run" is the truth
    assert isinstance(info.value.errors["default"], ReplyNotUnderstood)
    with pipeline() as p:
        echo, counter = p.echo("fresh"), p.get("c")
        p.execute()
    assert (echo.result, counter.result) == (b"fresh", b"1")


def test_interrupted_cluster_batch_does_not_poison_the_pool(
    configure: Configure, redis_cluster: Any
) -> None:
    configure({"cache": {"URL": redis_cluster.url, "CLUSTER": True}})
    client = connections.get("cache")
    node = client.get_node_from_key("k")
    pool = client.get_redis_connection(node).connection_pool
    conn = pool.get_connection()
    pool.release(conn)
    with interrupted_second_read(conn), pipeline(name="cache") as p:
        p.set("k", 1), p.set("k", 2), p.set("k", 3)
        with pytest.raises(KeyboardInterrupt):
            p.execute()
    with pipeline(name="cache") as p:
        echo, value = p.execute_command("ECHO", "fresh", target_nodes=node), p.get("k")
        p.execute()
    assert echo.result == b"fresh"
    assert value.result == b"3"


# -- cost ------------------------------------------------------------------------------------


def test_queueing_does_not_touch_the_network(two_backends: None, redis_server: Any) -> None:
    p = pipeline()
    futures = [p.set(f"k{i}", i) for i in range(1000)]
    assert len(p) == 1000
    assert raw_get(redis_server, "k0") is None
    p.execute()
    assert all(f.result is True for f in futures)
