"""Run redis-py's own tests with redis_conn's connection and pool classes swapped in."""

import redis
import redis.asyncio
import redis.asyncio.client
import redis.asyncio.connection as aconn
import redis.client
import redis.connection as conn

from redis_conn import async_pools, guarded, pools

SYNC = {
    conn.Connection: guarded.GuardedConnection,
    conn.SSLConnection: guarded.GuardedSSLConnection,
    conn.UnixDomainSocketConnection: guarded.GuardedUnixConnection,
}
ASYNC = {
    aconn.Connection: guarded.AsyncGuardedConnection,
    aconn.SSLConnection: guarded.AsyncGuardedSSLConnection,
    aconn.UnixDomainSocketConnection: guarded.AsyncGuardedUnixConnection,
}


class Pool(pools.GuardedConnectionPool):
    def __init__(self, connection_class=conn.Connection, max_connections=None, **kwargs):
        kwargs.pop("timeout", None)
        super().__init__(
            connection_class=SYNC.get(connection_class, connection_class),
            max_connections=max_connections,
            connection_name="redis-py-suite",
            blocking=False,
            **kwargs,
        )


class AsyncPool(async_pools.AsyncGuardedConnectionPool):
    def __init__(self, connection_class=aconn.Connection, max_connections=None, **kwargs):
        kwargs.pop("timeout", None)
        super().__init__(
            connection_class=ASYNC.get(connection_class, connection_class),
            max_connections=max_connections,
            connection_name="redis-py-suite",
            blocking=False,
            **kwargs,
        )


for module in (redis, redis.client, conn):
    module.ConnectionPool = Pool
for module in (redis.asyncio, redis.asyncio.client, aconn):
    module.ConnectionPool = AsyncPool

# Names the tests compare against, and classes they build by name.
for module in (redis, conn):
    module.Connection = guarded.GuardedConnection
    module.SSLConnection = guarded.GuardedSSLConnection
    module.UnixDomainSocketConnection = guarded.GuardedUnixConnection
for module in (redis.asyncio, aconn):
    module.Connection = guarded.AsyncGuardedConnection
    module.SSLConnection = guarded.AsyncGuardedSSLConnection
    module.UnixDomainSocketConnection = guarded.AsyncGuardedUnixConnection
