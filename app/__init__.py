"""The web side: links in, book records out, and the dashboard beside them."""

from __future__ import annotations

from flask import Flask

from app.api import bp
from app.dashboard import mount_dashboard
from app.errors import JsonRedirectFlask, register_error_handlers
from app.limits import BatchSpace, Gate, LargePostTurns, PostBudget, QueueShare, TrustedProxies
from app.record_cache import RecordCache
from books.batches import Batches
from books.hints import Hints
from books.queue import BookQueue
from books.redis_client import redis_client
from books.settings import Settings

# Redis connections one web process opens at most (redis-py's default pool size). A gevent
# worker serves up to a thousand requests at once; past this many Redis calls at once, a
# request waits for a free connection (up to REDIS_SOCKET_TIMEOUT): redis-py's plain pool
# would fail it at once, and it would be answered 503 "storage unreachable".
REDIS_CONNECTIONS = 100


def create_app(settings: Settings | None = None) -> Flask:
    """Build the app: settings, one Redis client, the book queue, the record cache, limits, routes, dashboard,
    errors."""
    settings = settings or Settings.from_env()
    app = JsonRedirectFlask(__name__)
    if settings.trusted_proxy_hops:
        # The client's address, scheme and host as the trusted proxies saw them (app/limits.py).
        app.wsgi_app = TrustedProxies(  # type: ignore[method-assign]
            app.wsgi_app, settings.trusted_proxy_networks, settings.trusted_proxy_hops
        )
    app.config["MAX_CONTENT_LENGTH"] = settings.max_request_bytes
    app.json.sort_keys = False  # type: ignore[attr-defined]

    redis = redis_client(
        settings,
        max_connections=REDIS_CONNECTIONS,
        socket_connect_timeout=settings.redis_socket_timeout,
        socket_timeout=settings.redis_socket_timeout,
        health_check_interval=30,
    )
    queue = BookQueue(redis, settings)
    app.extensions["book_queue"] = queue
    app.extensions["batches"] = Batches(redis, settings.key_prefix, settings.batch_ttl)
    app.extensions["hints"] = Hints(redis, settings.key_prefix, settings.batch_ttl)
    app.extensions["post_budget"] = PostBudget(
        redis, settings.key_prefix, settings.post_budget, settings.post_budget_window
    )
    app.extensions["exports"] = Gate(settings.max_exports)
    app.extensions["large_posts"] = LargePostTurns(redis, settings.key_prefix, settings.large_post_bytes)
    app.extensions["batch_space"] = BatchSpace(
        redis, settings.key_prefix, settings.client_batch_bytes, settings.max_batch_bytes, settings.batch_ttl
    )
    app.extensions["queue_share"] = QueueShare(
        redis, settings.key_prefix, settings.client_queued_books, settings.batch_ttl
    )
    app.extensions["record_cache"] = RecordCache(
        settings,
        queue.store.record_key(""),
        settings.record_cache_size,
        settings.redis_socket_timeout,
        settings.record_cache_bytes,
    )

    app.register_blueprint(bp)
    mount_dashboard(app, settings, redis)
    register_error_handlers(app)
    return app
