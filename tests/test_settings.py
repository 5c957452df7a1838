"""Settings.from_env: every conversion, and a ConfigError naming the variable for every value
the service cannot use."""

from __future__ import annotations

import pytest

from books.settings import ConfigError, Settings


def test_no_variables_give_the_defaults():
    assert Settings.from_env({}) == Settings()


def test_blank_values_are_ignored_and_others_stripped_and_converted():
    settings = Settings.from_env(
        {
            "REFRESH_AFTER": " 60 ",
            "FETCH_RATE": "0.5",
            "FETCH_READ_TIMEOUT": "3",
            "RETRY_INTERVALS": "1, 2,,3,",
            "QUEUE_NAME": " books ",
            "MAX_REDIRECTS": "",
            "JOB_TIMEOUT": "   ",
            "refresh_after": "1",
        }
    )
    assert (settings.refresh_after, settings.fetch_rate, settings.fetch_read_timeout) == (60, 0.5, 3.0)
    assert isinstance(settings.fetch_read_timeout, float)
    assert settings.retry_intervals == (1, 2, 3)
    assert settings.queue_name == "books"
    assert (settings.max_redirects, settings.job_timeout) == (3, 120), "blank values keep the defaults"


@pytest.mark.parametrize(
    ("value", "forks"), [("false", False), ("No", False), ("0", False), ("TRUE", True), ("1", True)]
)
def test_a_switch_takes_true_or_false_in_the_usual_spellings(value, forks):
    assert Settings.from_env({"WORKER_FORK": value}).worker_fork is forks
    assert Settings().worker_fork is True, "forking stays the default"


def test_the_process_environment_is_read_by_default(monkeypatch):
    monkeypatch.setenv("QUEUE_NAME", "from-the-environment")
    assert Settings.from_env().queue_name == "from-the-environment"


def test_the_lowest_accepted_values_pass():
    settings = Settings.from_env(
        {
            "FETCH_RATE": "0",
            "RETRY_MAX": "0",
            "RETRY_INTERVALS": ",",
            "MAX_LINKS_PER_REQUEST": "1",
            "MAX_REQUEST_BYTES": "1",
            "RECORD_CACHE_SIZE": "0",
        }
    )
    assert (settings.fetch_rate, settings.retry_max, settings.retry_intervals) == (0.0, 0, ())
    assert (settings.max_links_per_request, settings.max_request_bytes, settings.record_cache_size) == (1, 1, 0)


def test_the_origin_has_no_trailing_slash():
    assert Settings.from_env({"GOODREADS_BASE_URL": "http://127.0.0.1:8080/"}).origin == "http://127.0.0.1:8080"


def test_dashboard_auth_is_on_only_with_credentials():
    assert not Settings.from_env({}).dashboard_auth_enabled
    configured = Settings.from_env({"RQ_DASHBOARD_USERNAME": "operator", "RQ_DASHBOARD_PASSWORD": "pw"})
    assert configured.dashboard_auth_enabled


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("JOB_TIMEOUT", "2m", "JOB_TIMEOUT='2m' is not a valid int"),
        ("MAX_PAGE_BYTES", "1.5", "MAX_PAGE_BYTES='1.5' is not a valid int"),
        ("FETCH_RATE", "fast", "FETCH_RATE='fast' is not a valid float"),
        ("RETRY_INTERVALS", "15,1m", "RETRY_INTERVALS='15,1m' is not a valid tuple[int, ...]"),
        ("WORKER_FORK", "sometimes", "WORKER_FORK='sometimes' must be true or false"),
    ],
)
def test_a_value_that_does_not_convert_is_refused_by_name(variable, value, message):
    with pytest.raises(ConfigError) as refused:
        Settings.from_env({variable: value})
    assert str(refused.value) == message


@pytest.mark.parametrize(
    ("environment", "message"),
    [
        ({"FETCH_RATE": "-1"}, "FETCH_RATE must be 0 (no limit) or more"),
        ({"RETRY_MAX": "-1"}, "RETRY_MAX and RETRY_INTERVALS must not be negative"),
        ({"RETRY_INTERVALS": "5,-1"}, "RETRY_MAX and RETRY_INTERVALS must not be negative"),
        ({"MAX_LINKS_PER_REQUEST": "0"}, "MAX_LINKS_PER_REQUEST and MAX_REQUEST_BYTES must be positive"),
        ({"MAX_REQUEST_BYTES": "0"}, "MAX_LINKS_PER_REQUEST and MAX_REQUEST_BYTES must be positive"),
        ({"RECORD_CACHE_SIZE": "-1"}, "RECORD_CACHE_SIZE must be 0 (no cache) or more"),
        ({"GOODREADS_BASE_URL": "www.goodreads.com"}, "GOODREADS_BASE_URL must be an http(s) origin"),
        ({"GOODREADS_BASE_URL": "ftp://www.goodreads.com"}, "GOODREADS_BASE_URL must be an http(s) origin"),
        (
            {"RQ_DASHBOARD_USERNAME": "operator"},
            "set both RQ_DASHBOARD_USERNAME and RQ_DASHBOARD_PASSWORD, or neither",
        ),
        (
            {"RQ_DASHBOARD_PASSWORD": "pw"},
            "set both RQ_DASHBOARD_USERNAME and RQ_DASHBOARD_PASSWORD, or neither",
        ),
    ],
)
def test_a_value_the_service_cannot_use_is_refused_by_name(environment, message):
    with pytest.raises(ConfigError) as refused:
        Settings.from_env(environment)
    assert str(refused.value) == message
