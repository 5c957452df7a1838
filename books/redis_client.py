"""Every Redis client of the service is made here: one of ``REDIS_URL``'s server, or, with
``REDIS_SENTINELS`` set, one of the master that Redis Sentinel names, which follows failovers.

With Sentinel, ``REDIS_URL`` still gives what the master is reached with: the database, the
username and password (its userinfo), TLS (``rediss://``) and its query options; its host and
port are not used. The sentinels are asked with ``REDIS_SENTINEL_PASSWORD``, if set.

A Sentinel client (redis-py's ``SentinelConnectionPool``) asks the sentinels for the master's
address whenever it opens a connection, and treats a ``READONLY`` answer (the old master,
demoted) as a lost connection. But after a forced failover the old master stays a master for
a while (Sentinel demotes it some ten seconds later), and everything written to it meanwhile
is lost once it becomes a replica. So ``FollowingSentinelPool`` also asks the sentinels at
most once a second while the client is in use, and moves to the new master as soon as they
name one: idle connections are closed at once, those in use when they come back.
"""

from __future__ import annotations

import time
from contextlib import suppress
from typing import Any, TypeVar, overload

from redis import Redis
from redis.connection import BlockingConnectionPool, ConnectionPool, SSLConnection, parse_url
from redis.exceptions import ConnectionError, TimeoutError
from redis.sentinel import Sentinel, SentinelConnectionPool

from books.settings import Settings

# Seconds between two questions to the sentinels while a client is in use.
MASTER_CHECK_INTERVAL = 1.0

R = TypeVar("R", bound=Redis)


class FollowingSentinelPool(SentinelConnectionPool, BlockingConnectionPool):
    """redis-py's Sentinel pool, asking the sentinels at most every ``MASTER_CHECK_INTERVAL``
    seconds whether the master moved (and then dropping the connections to the old one), and,
    as ``BlockingConnectionPool``, waiting for a free connection when all are in use."""

    def __init__(self, service_name: str, sentinel_manager: Sentinel, **kwargs: Any) -> None:
        super().__init__(service_name, sentinel_manager, **kwargs)
        self._master_checked = 0.0

    def get_connection(self, *args: Any, **kwargs: Any) -> Any:
        now = time.monotonic()
        if now - self._master_checked >= MASTER_CHECK_INTERVAL:
            self._master_checked = now
            # No answer now: connecting asks the sentinels again, under the client's retry.
            with suppress(ConnectionError, TimeoutError):
                self.get_master_address()  # closes idle connections when the master changed
        return super().get_connection(*args, **kwargs)


@overload
def redis_client(settings: Settings, **options: Any) -> Redis: ...
@overload
def redis_client(settings: Settings, redis_class: type[R], **options: Any) -> R: ...
def redis_client(
    settings: Settings, redis_class: type[Redis] = Redis, *, max_connections: int | None = None, **options: Any
) -> Redis:
    """A ``redis_class`` client of the service's Redis master, with ``options`` (redis-py's
    connection options; those in ``REDIS_URL``'s query win, as with ``Redis.from_url``).
    With ``max_connections``, a call finding them all in use waits for one to come free (up
    to ``REDIS_SOCKET_TIMEOUT``) instead of failing at once, as redis-py's plain pool does."""
    waiting = {"max_connections": max_connections, "timeout": settings.redis_socket_timeout} if max_connections else {}
    if not settings.redis_sentinels:
        # As Redis.from_url does, without calling it: a subclass's from_url may call this.
        pool_class = BlockingConnectionPool if max_connections else ConnectionPool
        return redis_class.from_pool(pool_class.from_url(settings.redis_url, **waiting, **options))
    sentinel = Sentinel(settings.sentinel_addresses, sentinel_kwargs=sentinel_options(settings))
    return sentinel.master_for(
        settings.redis_sentinel_master,
        redis_class=redis_class,
        connection_pool_class=FollowingSentinelPool,
        **waiting,
        **master_options(settings.redis_url, options),
    )


def on_current_master(client: Redis, connection: Any) -> bool:
    """Whether ``connection``, of ``client``'s pool, is on the master the sentinels name now
    (always, without Sentinel; and while the sentinels do not answer, as nothing says otherwise)."""
    pool = client.connection_pool
    if not isinstance(pool, SentinelConnectionPool) or connection is None:
        return True
    try:
        return bool(pool.get_master_address() == (connection.host, connection.port))
    except (ConnectionError, TimeoutError):
        return True


def master_address(client: Redis) -> tuple[str, int] | None:
    """The master's address as ``client``'s pool last heard it from the sentinels (``None``
    without Sentinel, or before it asked)."""
    pool = client.connection_pool
    return pool.master_address if isinstance(pool, SentinelConnectionPool) else None


def sentinel_options(settings: Settings) -> dict[str, Any]:
    """How the sentinels themselves are asked: the socket timeouts, and their password."""
    return {
        "socket_connect_timeout": settings.redis_socket_timeout,
        "socket_timeout": settings.redis_socket_timeout,
        "password": settings.redis_sentinel_password or None,
    }


def master_options(redis_url: str, options: dict[str, Any]) -> dict[str, Any]:
    """The master's connection options: ``options``, then what ``redis_url`` says, but where
    to connect (the sentinels say that)."""
    from_url = parse_url(redis_url)
    from_url.pop("host", None)
    from_url.pop("port", None)
    if from_url.pop("connection_class", None) is SSLConnection:
        from_url["ssl"] = True  # the Sentinel pool then makes TLS connections
    return {**options, **from_url}
