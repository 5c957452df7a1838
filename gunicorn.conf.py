"""gunicorn's settings for the web process, written once: the Procfile, the Dockerfile and
docker-compose.yml all run ``gunicorn --config gunicorn.conf.py``.

gunicorn itself still reads ``PORT`` (the bind address) and ``WEB_CONCURRENCY`` (the number
of workers) from the environment.
"""

import gc

from books.logs import LOGGING
from books.settings import Settings, stop_on_config_error

# Checked here, in the master as it reads this file, so that a setting to fix stops gunicorn
# with one line, instead of each worker failing to boot with a traceback.
with stop_on_config_error():
    Settings.from_env()

wsgi_app = "app:create_app()"
# gevent workers (one greenlet per connection, so slow clients cannot hold the workers),
# answering the errors gunicorn answers itself (a request line too long, malformed headers)
# in the service's JSON shape; the access log as one JSON event per request.
worker_class = "app.gunicorn_worker.JsonErrorWorker"
# Connections each worker serves at once. A request's headers must arrive within keepalive
# seconds, which is also how long an idle connection stays open (and so a graceful stop waits).
worker_connections = 1000
keepalive = 2
logger_class = "app.gunicorn_logger.JsonAccessLogger"
logconfig_dict = LOGGING
# gunicorn's maximum, so that every link of up to 2,048 characters fits even percent-encoded.
limit_request_line = 8190
timeout = 30
graceful_timeout = 20


def when_ready(server) -> None:  # type: ignore[no-untyped-def]
    """Say once, as the service starts, who the dashboard answers (a warning when no
    credentials are set)."""
    from app.dashboard import dashboard_access

    settings = Settings.from_env()
    say = server.log.info if settings.dashboard_auth_enabled else server.log.warning
    say(dashboard_access(settings))


def post_worker_init(worker) -> None:  # type: ignore[no-untyped-def]
    """Take what the app loaded (some 65,000 objects: Flask, RQ, the dashboard, their modules)
    out of the garbage collector's sight: they live as long as the worker, and a full
    collection would otherwise walk them all, pausing every request the worker holds."""
    gc.freeze()
