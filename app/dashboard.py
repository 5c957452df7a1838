"""rq-dashboard at /rqstatus, on the service's Redis, guarded.

rq-dashboard has no access control of its own, so ``guard_dashboard`` runs first on each
of its requests:

- With ``RQ_DASHBOARD_USERNAME`` and ``RQ_DASHBOARD_PASSWORD`` set, every route asks for
  them (HTTP Basic). Wrong passwords slow down per client (``LoginThrottle``: after
  ``DASHBOARD_LOGIN_FAILURES`` of them, the client waits longer after each, up to
  ``DASHBOARD_LOCKOUT_MAX`` seconds, counted in Redis for every web process), and from all
  clients together (``DASHBOARD_GLOBAL_FAILURES`` a minute). A browser that logged in gets a
  signed cookie (``DASHBOARD_OPERATOR_TTL``): its password is checked even while its address
  or everyone is locked out, so a neighbour behind the operator's address, or a crowd of
  addresses guessing, does not lock the operator out. The cookie proves only an earlier login
  with the current password; the password is still asked for on every request.
- Without them, the dashboard answers loopback clients only (an operator on the host, or an
  SSH tunnel); gunicorn's start-up log says so (``gunicorn.conf.py``).
- Requeueing takes POST only, and a POST from a browser must come from the dashboard's own
  origin (``Sec-Fetch-Site``, else ``Origin``): another site cannot make an operator's
  browser requeue jobs. Deleting jobs and emptying queues stay switched off.

rq-dashboard reads jobs with RQ's pickle serializer by default, so a crafted job hash would run
code in the web process. Here it reads them as the workers do, with the service's JSON
``JobSerializer`` (books/jobs.py): a job that is not JSON is answered 422, never unpickled.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from functools import partial
from typing import Any

import rq_dashboard
import rq_dashboard.web
from flask import Flask, Response, g, request
from redis import Redis
from rq import Worker
from rq.exceptions import DeserializationError, NoSuchJobError
from rq.job import Job
from rq_dashboard.web import push_rq_connection

from app.dashboard_escaping import escape_dashboard_values
from app.errors import ApiError
from app.limits import LoginThrottle, client_address, is_loopback
from books.jobs import JobSerializer
from books.settings import Settings

URL_PREFIX = "/rqstatus"
# The cookie that marks a browser which logged in before (see the module's docstring).
OPERATOR_COOKIE = "rq_dashboard_operator"
# The dashboard's routes that change jobs: POST only, and only from its own pages.
STATE_CHANGING_ENDPOINTS = frozenset(
    f"{rq_dashboard.blueprint.name}.{name}"
    for name in ("requeue_job_view", "requeue_all", "delete_job_view", "empty_queue", "compact_queue")
)
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class _JsonJob(Job):
    def __init__(self, id: str | None = None, connection: Redis | None = None, serializer: Any = None) -> None:
        super().__init__(id, connection, JobSerializer)


class _JsonWorker(Worker):
    job_class = _JsonJob

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["serializer"] = JobSerializer
        super().__init__(*args, **kwargs)


def _read_jobs_as_json() -> None:
    """Point rq-dashboard's job reading at ``JobSerializer``: its serializer setting for the
    views that pass one, and, for those that fetch jobs with RQ's default (the job page,
    requeueing, the workers' current jobs), the names they call."""
    web: Any = rq_dashboard.web
    web.config.serializer = JobSerializer
    web.Job = _JsonJob
    web.Worker = _JsonWorker
    web.requeue_job = requeue_json_job


def requeue_json_job(job_id: str, connection: Redis) -> Job:
    """RQ's ``requeue_job`` for a job whose meta and data (the call a worker would make) read
    back as this service's JSON; ``DeserializationError`` (422) for any other, which is left
    where it is: the dashboard refuses to show it, and a worker would refuse to run it."""
    job = Job.fetch(job_id, connection=connection, serializer=JobSerializer)  # reads its meta
    job.args  # noqa: B018 (reads the data: the function's name, its arguments)
    return job.requeue()


def _use_app_client(app: Flask, redis: Redis) -> None:
    """Make the dashboard use the app's Redis client. rq-dashboard would make its own from a
    URL (``setup_rq_connection``), and a new one for each request of its instance pages
    (``push_rq_connection``), which knows neither Sentinel nor this service's timeouts."""

    def one_instance_only() -> None:
        if (request.view_args or {}).get("instance_number", 0) != 0:
            raise ApiError(404, "not_found", "the dashboard shows one Redis, instance 0")

    funcs = app.before_request_funcs[rq_dashboard.blueprint.name]
    funcs[funcs.index(push_rq_connection)] = one_instance_only
    app.redis_conn = redis  # type: ignore[attr-defined]  # rq-dashboard's views read it


def dashboard_address(settings: Settings) -> str:
    """The Redis the dashboard names in its header (rq-dashboard masks a URL's password)."""
    if settings.redis_sentinels:
        return f"redis+sentinel://{settings.redis_sentinels}/{settings.redis_sentinel_master}"
    return settings.redis_url


def mount_dashboard(app: Flask, settings: Settings, redis: Redis) -> None:
    app.config["RQ_DASHBOARD_REDIS_URL"] = (dashboard_address(settings),)
    app.config["RQ_DASHBOARD_DISABLE_DELETE"] = True
    _read_jobs_as_json()
    app.register_blueprint(rq_dashboard.blueprint, url_prefix=URL_PREFIX)
    escape_dashboard_values(app, rq_dashboard.blueprint.jinja_loader)
    _use_app_client(app, redis)
    throttle = LoginThrottle(
        redis,
        settings.key_prefix,
        settings.dashboard_login_failures,
        settings.dashboard_lockout_max,
        settings.dashboard_global_failures,
    )

    def guard_dashboard() -> None:
        """Who may see the dashboard, and which requests may change jobs (see the module's
        docstring); 503 JSON (not the dashboard's own HTML "Connection Error" page) while Redis
        is unreachable."""
        client = client_address()
        if settings.dashboard_auth_enabled:
            _check_credentials(settings, throttle, client)
        elif not is_loopback(client):
            raise ApiError(
                403,
                "dashboard_local_only",
                "the dashboard has no credentials set (RQ_DASHBOARD_USERNAME, RQ_DASHBOARD_PASSWORD), "
                "so it answers clients on this host only",
            )
        if request.endpoint in STATE_CHANGING_ENDPOINTS and request.method != "POST":
            raise ApiError(405, "method_not_allowed", "this dashboard action takes POST only", {"Allow": "POST"})
        if request.method not in SAFE_METHODS and not _from_own_origin():
            raise ApiError(403, "cross_site_request", "dashboard actions are taken from the dashboard's own pages")
        redis.ping()  # raises ConnectionError → 503 JSON

    # Runs for the dashboard's requests only (first, before its own hooks), not for the API's.
    app.before_request_funcs.setdefault(rq_dashboard.blueprint.name, []).insert(0, guard_dashboard)
    app.after_request_funcs.setdefault(rq_dashboard.blueprint.name, []).append(partial(_remember_operator, settings))
    app.register_error_handler(DeserializationError, _refused_job)
    app.register_error_handler(NoSuchJobError, _unknown_job)


def dashboard_access(settings: Settings) -> str:
    """One line for the start-up log: who the dashboard answers."""
    if settings.dashboard_auth_enabled:
        return f"rq-dashboard at {URL_PREFIX} asks for RQ_DASHBOARD_USERNAME and RQ_DASHBOARD_PASSWORD"
    return (
        f"rq-dashboard at {URL_PREFIX} has no credentials (RQ_DASHBOARD_USERNAME, RQ_DASHBOARD_PASSWORD): "
        "it answers clients on this host (loopback) only"
    )


def _check_credentials(settings: Settings, throttle: LoginThrottle, client: str) -> None:
    now = int(time.time())
    known = known_operator(settings, request.cookies.get(OPERATOR_COOKIE), now)
    if not known:
        _refuse_while_locked(throttle, client)
    auth = request.authorization
    if auth is not None and auth.type == "basic":
        if _credentials_match(settings, auth.username or "", auth.password or ""):
            throttle.succeeded(client)
            if not known:
                g.operator_cookie = operator_token(settings, now)
            return
        throttle.failed(client)
    raise ApiError(
        401,
        "unauthorized",
        "the dashboard needs a user name and password",
        {"WWW-Authenticate": 'Basic realm="rq-dashboard", charset="UTF-8"'},
    )


def _refuse_while_locked(throttle: LoginThrottle, client: str) -> None:
    for wait, whose in ((throttle.wait(client), "this client"), (throttle.global_wait(), "all clients")):
        if wait:
            raise ApiError(
                429,
                "too_many_failed_logins",
                f"too many wrong passwords from {whose}; try again in {wait} s",
                {"Retry-After": str(wait)},
            )


def operator_token(settings: Settings, issued: int) -> str:
    """The known-operator cookie's value: when it was issued, and an HMAC of that and the user
    name keyed by the password (a new password makes every earlier cookie worthless)."""
    key = hashlib.sha256(b"rq-dashboard operator\0" + settings.rq_dashboard_password.encode()).digest()
    mac = hmac.new(key, f"{settings.rq_dashboard_username}\0{issued}".encode(), hashlib.sha256).hexdigest()
    return f"{issued}.{mac}"


def known_operator(settings: Settings, token: str | None, now: int) -> bool:
    """Whether ``token`` is a cookie this dashboard issued within DASHBOARD_OPERATOR_TTL."""
    issued, _, _ = (token or "").partition(".")
    if not (issued.isascii() and issued.isdigit()) or not 0 <= now - int(issued) <= settings.dashboard_operator_ttl:
        return False
    return hmac.compare_digest((token or "").encode(), operator_token(settings, int(issued)).encode())


def _remember_operator(settings: Settings, response: Response) -> Response:
    """Give a browser that just logged in the known-operator cookie, for the dashboard's paths only."""
    token = g.pop("operator_cookie", None)
    if token:
        response.set_cookie(
            OPERATOR_COOKIE,
            token,
            max_age=settings.dashboard_operator_ttl,
            path=URL_PREFIX,
            secure=request.is_secure,
            httponly=True,
            samesite="Strict",
        )
    return response


def _credentials_match(settings: Settings, username: str, password: str) -> bool:
    user_ok = hmac.compare_digest(username.encode(), settings.rq_dashboard_username.encode())
    password_ok = hmac.compare_digest(password.encode(), settings.rq_dashboard_password.encode())
    return user_ok and password_ok


def _from_own_origin() -> bool:
    """Whether a browser sent this request from the dashboard's own origin; a request that
    carries neither header comes from no browser (curl, a script) and needs the password alone."""
    site = request.headers.get("Sec-Fetch-Site")
    if site is not None:
        return site in ("same-origin", "none")
    origin = request.headers.get("Origin")
    if origin is not None:
        return origin == request.host_url.rstrip("/")
    return True


def _unknown_job(error: Exception) -> tuple[Response, int]:
    return ApiError(404, "unknown_job", "no such job (finished book jobs are deleted at once)").response()


def _refused_job(error: Exception) -> tuple[Response, int]:
    return ApiError(
        422, "unsafe_job_data", f"the job's data is not this service's JSON and was not read: {error}"
    ).response()
