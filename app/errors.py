"""One JSON shape for every error: ``{"error": <code>, "message": <text>}``.

Flask's own 4xx (unknown path, wrong method, oversized body), Redis being
unreachable and anything unexpected all answer in that shape, never as HTML
and never with a traceback.
"""

from __future__ import annotations

import logging

from flask import Flask, Response, jsonify
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from werkzeug.exceptions import HTTPException

log = logging.getLogger(__name__)


def error_response(status: int, error: str, message: str, **extra: object) -> tuple[Response, int]:
    return jsonify(error=error, message=message, **extra), status


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException):
        code = (error.name or "error").lower().replace(" ", "_").replace("'", "")
        response, status = error_response(error.code or 500, code, error.description or error.name)
        for header in ("Allow", "WWW-Authenticate", "Retry-After"):
            if error.get_response().headers.get(header):
                response.headers[header] = error.get_response().headers[header]
        return response, status

    @app.errorhandler(RedisConnectionError)
    @app.errorhandler(RedisTimeoutError)
    def redis_unavailable(error: Exception):
        log.warning("Redis is unreachable: %s", error)
        response, status = error_response(503, "redis_unavailable",
                                          "the service's storage is unreachable; try again shortly")
        response.headers["Retry-After"] = "5"
        return response, status

    @app.errorhandler(Exception)
    def unexpected(error: Exception):
        log.exception("unexpected error")
        return error_response(500, "internal_error", "the service failed to answer this request")
