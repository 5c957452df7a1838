"""A small forward HTTP proxy for tests: it forwards absolute-URI GETs and records them."""

from __future__ import annotations

import threading
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class ForwardProxy:
    def __init__(self) -> None:
        self.seen: list[str] = []
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):  # a proxy passes redirects on
        return None


def _handler(proxy: ForwardProxy):
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirect)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args) -> None:  # quiet
            pass

        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            proxy.seen.append(self.path)
            headers = {k: v for k, v in self.headers.items() if k.lower() not in ("proxy-connection", "connection")}
            try:
                with opener.open(urllib.request.Request(self.path, headers=headers), timeout=10) as upstream:
                    status, body, upstream_headers = upstream.status, upstream.read(), upstream.headers
            except urllib.error.HTTPError as error:
                status, body, upstream_headers = error.code, error.read(), error.headers
            self.send_response(status)
            for key, value in upstream_headers.items():
                if key.lower() not in ("content-length", "transfer-encoding", "connection"):
                    self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    return Handler
