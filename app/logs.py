"""One JSON object per line for every log event, from the web and the worker.

``app/logging.json`` is the logging configuration of both (gunicorn's ``--log-config-json``
and the worker's ``DICT_CONFIG``): every logger writes to stdout through ``JsonFormatter``.
Fields given as ``extra={"fields": {...}}`` become keys of the event, so a line can be
filtered by book id, job id, attempt, origin status, duration or outcome.
"""

from __future__ import annotations

import json
import logging
import time
from datetime import UTC, datetime
from typing import Any

from flask import Flask, Response, g, request


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        event: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        event.update(getattr(record, "fields", {}))
        if record.exc_info:
            event["exception"] = self.formatException(record.exc_info)
        return json.dumps(event, default=str, ensure_ascii=False)


def register_request_log(app: Flask) -> None:
    """Log every request as one event: method, path, status and duration (never headers,
    so credentials stay out of the logs)."""
    log = logging.getLogger("app.requests")

    @app.before_request
    def start_clock() -> None:
        g.request_started = time.perf_counter()

    @app.after_request
    def log_request(response: Response) -> Response:
        started = g.get("request_started")
        log.info("request", extra={"fields": {
            "method": request.method, "path": request.path, "status": response.status_code,
            "duration_ms": round((time.perf_counter() - started) * 1000, 2) if started else None}})
        return response
