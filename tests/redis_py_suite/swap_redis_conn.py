"""Run redis-py's own tests with redis_conn's connection and pool classes swapped in."""

import redis
import redis.asyncio
import redis.asyncio.client
import redis.asyncio.connection as aconn
import redis.client
import redis.connection as conn

from redis_conn import async_pools, guarded, pools


# Subclasses under redis-py's own class names: some of its tests compare names in a repr.
class Connection(guarded.GuardedConnection):
    pass


class SSLConnection(guarded.GuardedSSLConnection):
    pass


class UnixDomainSocketConnection(guarded.GuardedUnixConnection):
    pass


class AsyncConnection(guarded.AsyncGuardedConnection):
    pass


class AsyncSSLConnection(guarded.AsyncGuardedSSLConnection):
    pass


class AsyncUnixDomainSocketConnection(guarded.AsyncGuardedUnixConnection):
    pass


AsyncConnection.__name__ = "Connection"
AsyncSSLConnection.__name__ = "SSLConnection"
AsyncUnixDomainSocketConnection.__name__ = "UnixDomainSocketConnection"

SYNC = {
    conn.Connection: Connection,
    conn.SSLConnection: SSLConnection,
    conn.UnixDomainSocketConnection: UnixDomainSocketConnection,
}
ASYNC = {
    aconn.Connection: AsyncConnection,
    aconn.SSLConnection: AsyncSSLConnection,
    aconn.UnixDomainSocketConnection: AsyncUnixDomainSocketConnection,
}


class ConnectionPool(pools.GuardedConnectionPool):
    def __init__(self, connection_class=conn.Connection, max_connections=None, **kwargs):
        kwargs.pop("timeout", None)
        super().__init__(
            connection_class=SYNC.get(connection_class, connection_class),
            max_connections=max_connections,
            connection_name="redis-py-suite",
            blocking=False,
            **kwargs,
        )


class AsyncConnectionPool(async_pools.AsyncGuardedConnectionPool):
    def __init__(self, connection_class=aconn.Connection, max_connections=None, **kwargs):
        kwargs.pop("timeout", None)
        super().__init__(
            connection_class=ASYNC.get(connection_class, connection_class),
            max_connections=max_connections,
            connection_name="redis-py-suite",
            blocking=False,
            **kwargs,
        )


class BlockingConnectionPool(pools.GuardedConnectionPool):
    def __init__(self, connection_class=conn.Connection, max_connections=50, timeout=20, **kwargs):
        kwargs.pop("queue_class", None)
        super().__init__(
            connection_class=SYNC.get(connection_class, connection_class),
            max_connections=max_connections,
            connection_name="redis-py-suite",
            blocking=True,
            pool_timeout=timeout if timeout is not None else 10**9,
            **kwargs,
        )
        self.timeout = timeout


class AsyncBlockingConnectionPool(async_pools.AsyncGuardedConnectionPool):
    def __init__(self, connection_class=aconn.Connection, max_connections=50, timeout=20, **kwargs):
        kwargs.pop("queue_class", None)
        super().__init__(
            connection_class=ASYNC.get(connection_class, connection_class),
            max_connections=max_connections,
            connection_name="redis-py-suite",
            blocking=True,
            pool_timeout=timeout if timeout is not None else 10**9,
            **kwargs,
        )
        self.timeout = timeout


AsyncConnectionPool.__name__ = "ConnectionPool"
AsyncBlockingConnectionPool.__name__ = "BlockingConnectionPool"

for module in (redis, redis.client, conn):
    module.ConnectionPool = ConnectionPool
    module.BlockingConnectionPool = BlockingConnectionPool
for module in (redis.asyncio, redis.asyncio.client, aconn):
    module.ConnectionPool = AsyncConnectionPool
    module.BlockingConnectionPool = AsyncBlockingConnectionPool

# Names the tests compare against, and classes they build by name.
for module in (redis, conn):
    module.Connection = Connection
    module.SSLConnection = SSLConnection
    module.UnixDomainSocketConnection = UnixDomainSocketConnection
for module in (redis.asyncio, aconn):
    module.Connection = AsyncConnection
    module.SSLConnection = AsyncSSLConnection
    module.UnixDomainSocketConnection = AsyncUnixDomainSocketConnection
