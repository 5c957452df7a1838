"""The fake origin itself: a step it does not know is refused when it is given, not served as
something else later; a page over a kept-alive connection waits for no delayed ACK."""

from __future__ import annotations

import time

import pytest
import requests

from tests.origin import BEHAVIOURS, Origin


@pytest.mark.parametrize("step", ["pgae", "503x", "999", "send", "status:500", ""])
def test_an_unknown_step_is_refused_at_once(origin: Origin, step: str):
    with pytest.raises(ValueError, match="unknown behaviour"):
        origin.behave("42", "503", step)
    assert "42" not in origin.behaviours


def test_a_book_needs_at_least_one_step(origin: Origin):
    with pytest.raises(ValueError, match="at least one behaviour"):
        origin.behave("42")


@pytest.mark.parametrize("step", ["404", "429:3", "slow:0.1", "redirect:/book/show/7", "page:Title"])
def test_statuses_and_named_behaviours_are_accepted(origin: Origin, step: str):
    origin.behave("42", step)
    assert origin.behaviours["42"] == [step]


def test_the_documented_behaviours_are_all_known():
    assert {"page", "slow", "429", "cookie", "waf", "signin", "redirect", "truncated", "stall", "reset", "huge"} <= (
        BEHAVIOURS
    )


def test_pages_over_one_connection_wait_for_no_delayed_ack(origin: Origin):
    """Linux delays an ACK by at least 40 ms: with Nagle's algorithm on, every page of a kept-alive
    connection waited that long for its last segment. The fastest of 20 fetches shows it, however
    loaded the machine (load makes some fetches slow, not all)."""
    with requests.Session() as session:
        took = []
        for book in range(20):
            started = time.perf_counter()
            response = session.get(f"{origin.url}/book/show/{book + 1}", timeout=5)
            assert response.status_code == 200 and b"__NEXT_DATA__" in response.content
            took.append(time.perf_counter() - started)
    assert min(took[1:]) < 0.02, f"fastest page {min(took[1:]) * 1000:.1f} ms"
