"""The web worker's own bounds in process: a request body's whole-body deadline and the
per-client cap on open connections (gunicorn's gevent worker runs them; tests/test_abuse_bounds.py
runs them under attack)."""

from __future__ import annotations

import socket
import time
from ipaddress import ip_network

import gevent
import pytest
from werkzeug.exceptions import RequestTimeout

from app.gunicorn_worker import BodyDeadline, ClientConnections


class TricklingBody:
    """gunicorn's body reader for a client that sends ``chunks`` one every ``interval`` seconds."""

    def __init__(self, chunks: list[bytes], interval: float) -> None:
        self.chunks = chunks
        self.interval = interval

    def read(self, size: int | None = None) -> bytes:
        data = b""
        while self.chunks and (size is None or len(data) < size):  # as gunicorn's Body.read: all asked for
            gevent.sleep(self.interval)
            data += self.chunks.pop(0)
        return data

    def readline(self, size: int | None = None) -> bytes:
        return self.read(size)


@pytest.fixture
def sock():
    ours, theirs = socket.socketpair()
    yield ours
    ours.close()
    theirs.close()


def test_a_body_that_arrives_in_time_is_read_whole(sock):
    body = BodyDeadline(TricklingBody([b"[", b"]"], 0.01), sock, seconds=1)
    assert body.read() == b"[]"


def test_a_trickling_body_is_cut_at_the_deadline_and_its_connection_stops_reading(sock):
    body = BodyDeadline(TricklingBody([b" "] * 100, 0.1), sock, seconds=0.3)
    started = time.monotonic()
    with pytest.raises(RequestTimeout, match=r"within 0.3 s \(REQUEST_BODY_TIMEOUT\)"):
        body.read()
    assert 0.3 <= time.monotonic() - started < 0.6
    assert sock.recv(10) == b""  # the reading side is shut: nothing more is waited for


def test_the_deadline_covers_every_read_together(sock):
    body = BodyDeadline(TricklingBody([b"a"] * 100, 0.1), sock, seconds=0.35)
    assert body.read(2) == b"aa"  # 0.2 s of the 0.35 spent
    with pytest.raises(RequestTimeout):
        body.readline(2)
    assert list(BodyDeadline(TricklingBody([b"line\n"], 0), sock, seconds=1)) == [b"line\n"]


def test_each_client_holds_at_most_the_cap_and_proxies_are_not_capped():
    connections = ClientConnections(2, (ip_network("10.0.0.0/8"),))
    assert [connections.take("203.0.113.5") for _ in range(3)] == [True, True, False]
    assert connections.take("198.51.100.7")  # another client has its own
    connections.give_back("203.0.113.5")
    assert connections.take("203.0.113.5") and not connections.take("203.0.113.5")
    assert all(connections.take("10.1.2.3") for _ in range(5))  # the trusted proxy carries many clients
    for _ in range(5):
        connections.give_back("10.1.2.3")
    assert "10.1.2.3" not in connections.open
    assert all(ClientConnections(0).take("203.0.113.5") for _ in range(500))  # 0: no cap
