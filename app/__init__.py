"""The Flask service: links in, book records out."""

from __future__ import annotations

from typing import TYPE_CHECKING

from redis import Redis

from app.config import Settings

if TYPE_CHECKING:
    from flask import Flask


def create_app(settings: Settings | None = None) -> Flask:
    """Build the app: settings, one Redis client, the book queue, the record cache, routes, dashboard, errors."""
    # Imported here, not at the top, so that the worker, which imports the shared domain
    # (app.config, app.links, app.store), never loads Flask, the routes or the dashboard:
    # every module its main process holds makes each fork of a work horse dearer.
    from flask import Flask

    from app.api import bp
    from app.batches import Batches
    from app.dashboard import mount_dashboard
    from app.errors import register_error_handlers
    from app.jobs import BookJobs
    from app.record_cache import RecordCache

    settings = settings or Settings.from_env()
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_request_bytes
    app.json.sort_keys = False

    redis = Redis.from_url(settings.redis_url, socket_connect_timeout=settings.redis_socket_timeout,
                           socket_timeout=settings.redis_socket_timeout, health_check_interval=30)
    jobs = BookJobs(redis, settings)
    app.extensions["book_jobs"] = jobs
    app.extensions["batches"] = Batches(redis, settings.key_prefix, settings.batch_ttl)
    app.extensions["record_cache"] = RecordCache(settings.redis_url, jobs.store.record_key(""),
                                                 settings.record_cache_size, settings.redis_socket_timeout)

    app.register_blueprint(bp)
    mount_dashboard(app, settings)
    register_error_handlers(app)
    return app
