"""The fake origin itself: a step it does not know is refused when it is given, not served as
something else later."""

from __future__ import annotations

import pytest

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
