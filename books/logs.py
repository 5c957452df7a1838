"""One JSON object per line for every log event, from the web and the worker.

``LOGGING`` is the logging configuration of both (gunicorn's ``logconfig_dict`` in
``gunicorn.conf.py`` and the worker's ``DICT_CONFIG``): every logger writes to stdout
through ``JsonFormatter``. Fields given as ``extra={"fields": {...}}`` become keys of the
event, so a line can be filtered by book id, job id, attempt, origin status, duration or
outcome.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

LOGGING: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"json": {"()": "books.logs.JsonFormatter"}},
    "handlers": {"stdout": {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stdout"}},
    "root": {"level": "INFO", "handlers": ["stdout"]},
    # gunicorn's own loggers have handlers of their own unless told to pass their events up.
    "loggers": {
        name: {"level": "INFO", "handlers": [], "propagate": True} for name in ("gunicorn.error", "gunicorn.access")
    },
}


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
