"""Run redis-py's own tests with redis_conn's connection and pool classes swapped in."""

import redis
import redis.asyncio
import redis.asyncio.client
import redis.asyncio.connection as aconn
import redis.client
import redis.connection as conn

from redis_conn import async_pools, guarded, pools


def renamed(ours, theirs):
    """``ours`` under redis-py's class name: some of its tests compare names in a repr."""
    return type(theirs.__name__, (ours,), {"__module__": __name__})


SYNC = {
    theirs: renamed(ours, theirs)
    for theirs, ours in (
        (conn.Connection, guarded.GuardedConnection),
        (conn.SSLConnection, guarded.GuardedSSLConnection),
        (conn.UnixDomainSocketConnection, guarded.GuardedUnixConnection),
    )
}
ASYNC = {
    theirs: renamed(ours, theirs)
    for theirs, ours in (
        (aconn.Connection, guarded.AsyncGuardedConnection),
        (aconn.SSLConnection, guarded.AsyncGuardedSSLConnection),
        (aconn.UnixDomainSocketConnection, guarded.AsyncGuardedUnixConnection),
    )
}


def swapped_pool(base, classes, default_class, *, blocking, public_name):
    """One of our pools under redis-py's pool signature (and name): ``timeout`` is how long a
    blocking pool waits, ``queue_class`` has nothing to set in ours."""

    def __init__(self, connection_class=default_class, max_connections=None, **kwargs):
        timeout = kwargs.pop("timeout", 20)
        kwargs.pop("queue_class", None)
        if blocking and max_connections is None:
            max_connections = 50  # redis-py's BlockingConnectionPool default
        base.__init__(
            self,
            connection_class=classes.get(connection_class, connection_class),
            max_connections=max_connections,
            connection_name="redis-py-suite",
            blocking=blocking,
            pool_timeout=timeout if timeout is not None else 10**9,
            **kwargs,
        )
        self.timeout = timeout

    return type(public_name, (base,), {"__init__": __init__, "__module__": __name__})


ConnectionPool = swapped_pool(
    pools.GuardedConnectionPool, SYNC, conn.Connection, blocking=False, public_name="ConnectionPool"
)
BlockingConnectionPool = swapped_pool(
    pools.GuardedConnectionPool,
    SYNC,
    conn.Connection,
    blocking=True,
    public_name="BlockingConnectionPool",
)
AsyncConnectionPool = swapped_pool(
    async_pools.AsyncGuardedConnectionPool,
    ASYNC,
    aconn.Connection,
    blocking=False,
    public_name="ConnectionPool",
)
AsyncBlockingConnectionPool = swapped_pool(
    async_pools.AsyncGuardedConnectionPool,
    ASYNC,
    aconn.Connection,
    blocking=True,
    public_name="BlockingConnectionPool",
)

for module in (redis, redis.client, conn):
    module.ConnectionPool = ConnectionPool
    module.BlockingConnectionPool = BlockingConnectionPool
for module in (redis.asyncio, redis.asyncio.client, aconn):
    module.ConnectionPool = AsyncConnectionPool
    module.BlockingConnectionPool = AsyncBlockingConnectionPool

# Names the tests compare against, and classes they build by name.
for modules, classes in (((redis, conn), SYNC), ((redis.asyncio, aconn), ASYNC)):
    for module in modules:
        for theirs, ours in classes.items():
            setattr(module, theirs.__name__, ours)

# Tests that need a Redis Cluster, which this harness does not start, and that redis-py does
# not mark ``onlycluster``: they fail the same with redis-py's own pools.
NEEDS_CLUSTER = frozenset(
    f"tests/{path}::TestPubSubSubscriberModeProtocol::"
    "test_subscriber_mode_rejects_regular_command_after_ssubscribe"
    for path in ("test_pubsub.py", "test_asyncio/test_pubsub.py")
)


def pytest_collection_modifyitems(config, items):
    deselected = [item for item in items if item.nodeid in NEEDS_CLUSTER]
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = [item for item in items if item.nodeid not in NEEDS_CLUSTER]
