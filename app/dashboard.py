"""rq-dashboard at /rqstatus, on the service's Redis, behind HTTP Basic auth when configured.

rq-dashboard has no authentication of its own. When ``RQ_DASHBOARD_USERNAME`` and
``RQ_DASHBOARD_PASSWORD`` are set, every dashboard route (pages, JSON, requeue)
asks for them. Deleting jobs and emptying queues is always switched off: the
dashboard is for watching and requeueing, not for destroying.
"""

from __future__ import annotations

import hmac

import rq_dashboard
from flask import Flask, request
from rq_dashboard.web import setup_rq_connection

from app.errors import ApiError
from books.settings import Settings

URL_PREFIX = "/rqstatus"


def mount_dashboard(app: Flask, settings: Settings) -> None:
    app.config["RQ_DASHBOARD_REDIS_URL"] = settings.redis_url
    app.config["RQ_DASHBOARD_DISABLE_DELETE"] = True
    app.register_blueprint(rq_dashboard.blueprint, url_prefix=URL_PREFIX)
    setup_rq_connection(app)

    def guard_dashboard() -> None:
        """Ask for credentials when configured; answer 503 JSON (not the dashboard's
        own HTML "Connection Error" page) while Redis is unreachable."""
        if settings.dashboard_auth_enabled and not _credentials_match(settings):
            raise ApiError(
                401,
                "unauthorized",
                "the dashboard needs a user name and password",
                {"WWW-Authenticate": 'Basic realm="rq-dashboard", charset="UTF-8"'},
            )
        # setup_rq_connection sets redis_conn on the app, which Flask's types do not know.
        app.redis_conn.ping()  # type: ignore[attr-defined]  # raises ConnectionError → 503 JSON

    # Runs for the dashboard's requests only (first, before its own hooks), not for the API's.
    app.before_request_funcs.setdefault(rq_dashboard.blueprint.name, []).insert(0, guard_dashboard)


def _credentials_match(settings: Settings) -> bool:
    auth = request.authorization
    if auth is None or auth.type != "basic":
        return False
    user_ok = hmac.compare_digest((auth.username or "").encode(), settings.rq_dashboard_username.encode())
    password_ok = hmac.compare_digest((auth.password or "").encode(), settings.rq_dashboard_password.encode())
    return user_ok and password_ok
