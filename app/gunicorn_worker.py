"""gunicorn's sync worker, answering the errors gunicorn raises itself (a request line
or headers too long, a malformed request line) in the service's JSON error shape
instead of gunicorn's HTML page. Everything else is gunicorn's own behaviour."""

from __future__ import annotations

import json
import socket
from typing import TYPE_CHECKING, Any

from gunicorn import util
from gunicorn.workers.sync import SyncWorker

if TYPE_CHECKING:
    from gunicorn.http.message import Request


def write_json_error(sock: socket.socket, status_int: int, reason: str, mesg: str) -> None:
    code = reason.lower().replace(" ", "_")
    body = json.dumps({"error": code, "message": mesg or reason}).encode()
    head = (
        f"HTTP/1.1 {status_int} {reason}\r\nConnection: close\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode("latin-1")
    util.write_nonblock(sock, head + body)


class JsonErrorWorker(SyncWorker):
    def handle_error(self, req: Request | None, client: socket.socket, addr: Any, exc: BaseException) -> None:
        # gunicorn builds its error page with util.write_error; swap it for the JSON one
        # while its own handler runs (a sync worker handles one request at a time).
        html_writer = util.write_error
        util.write_error = write_json_error
        try:
            super().handle_error(req, client, addr, exc)
        finally:
            util.write_error = html_writer
