"""gunicorn's logger, writing its access log as one JSON ``request`` event per request.

gunicorn times each request from its first byte to the last byte of the answer, so its
access log is where a request's duration is known; it goes to the ``gunicorn.access``
logger, which ``books.logs.LOGGING`` (``logconfig_dict`` in ``gunicorn.conf.py``) sends to
the JSON formatter.
The event carries method, path, status, bytes sent and duration, never headers or the
query string, so credentials and links stay out of the logs.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from gunicorn.glogging import Logger

if TYPE_CHECKING:
    from gunicorn.http.message import Request
    from gunicorn.http.wsgi import Response


class JsonAccessLogger(Logger):
    def access(self, resp: Response, req: Request, environ: dict[str, Any], request_time: timedelta) -> None:
        if not self.access_log_enabled:
            return
        status = resp.status
        self.access_log.info(
            "request",
            extra={
                "fields": {
                    "method": environ.get("REQUEST_METHOD"),
                    "path": environ.get("PATH_INFO"),
                    "status": int(status.split(None, 1)[0]) if isinstance(status, str) else status,
                    "bytes": getattr(resp, "sent", None),
                    "duration_ms": round(request_time.total_seconds() * 1000, 2),
                }
            },
        )
