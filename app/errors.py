"""One JSON shape for every error: ``{"error": <code>, "message": <text>}``.

The routes raise ``ApiError``; Flask's own 4xx (unknown path, wrong method, oversized
body) and routing redirects, Redis being unreachable or refusing writes, and anything
unexpected answer in the same shape, never as HTML and never with a traceback.
"""

from __future__ import annotations

import logging
from typing import Any, NoReturn

from flask import Flask, Request, Response, jsonify
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import OutOfMemoryError, ReadOnlyError
from redis.exceptions import TimeoutError as RedisTimeoutError
from werkzeug.exceptions import HTTPException
from werkzeug.routing import RequestRedirect

log = logging.getLogger(__name__)


class ApiError(Exception):
    """A request the service answers with an error: HTTP status, a code, a reason, and any
    more keys the body should carry."""

    def __init__(
        self, status: int, error: str, message: str, headers: dict[str, str] | None = None, **extra: Any
    ) -> None:
        super().__init__(message)
        self.status = status
        self.error = error
        self.message = message
        self.headers = headers or {}
        self.extra = extra

    def response(self) -> tuple[Response, int]:
        response = jsonify(error=self.error, message=self.message, **self.extra)
        response.headers.update(self.headers)
        return response, self.status


class JsonRedirectFlask(Flask):
    """Flask answering its routing redirects (``/rqstatus`` to ``/rqstatus/``, doubled slashes
    merged) in JSON: it returns them as an HTML page, passing them by the error handlers.
    Raised as an ``ApiError`` from ``raise_routing_exception`` (where Flask raises them, and
    which it offers for this), they keep their status and Location; a ``before_request``
    hook would do the same at a cost on every request."""

    def raise_routing_exception(self, request: Request) -> NoReturn:
        redirect = request.routing_exception
        if isinstance(redirect, RequestRedirect):
            raise ApiError(
                redirect.code,
                _error_code(redirect),
                f"the resource is at {redirect.new_url}",
                {"Location": redirect.new_url},
            )
        super().raise_routing_exception(request)


def register_error_handlers(app: Flask) -> None:
    app.register_error_handler(ApiError, ApiError.response)

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException) -> tuple[Response, int]:
        own = error.get_response().headers
        headers = {name: own[name] for name in ("Allow", "WWW-Authenticate", "Retry-After") if own.get(name)}
        return ApiError(error.code or 500, _error_code(error), error.description or error.name, headers).response()

    @app.errorhandler(RedisConnectionError)
    @app.errorhandler(RedisTimeoutError)
    def redis_unavailable(error: Exception) -> tuple[Response, int]:
        log.warning("Redis is unreachable: %s", error)
        return ApiError(
            503, "redis_unavailable", "the service's storage is unreachable; try again shortly", {"Retry-After": "5"}
        ).response()

    @app.errorhandler(OutOfMemoryError)
    @app.errorhandler(ReadOnlyError)
    def redis_refuses_writes(error: Exception) -> tuple[Response, int]:
        log.warning("Redis refuses writes: %s", error)
        if isinstance(error, OutOfMemoryError):
            code, reason = "redis_out_of_memory", "the service's storage is full (Redis is at its maxmemory)"
        else:
            code, reason = "redis_read_only", "the service's storage is read-only (a Redis replica)"
        return ApiError(
            503, code, f"{reason}; the request was not carried out; try again later", {"Retry-After": "30"}
        ).response()

    @app.errorhandler(Exception)
    def unexpected(error: Exception) -> tuple[Response, int]:
        log.exception("unexpected error")
        return ApiError(500, "internal_error", "the service failed to answer this request").response()


def _error_code(error: HTTPException) -> str:
    """The error's HTTP reason phrase as a code: ``Method Not Allowed`` is ``method_not_allowed``."""
    return (error.name or "error").lower().replace(" ", "_").replace("'", "")
