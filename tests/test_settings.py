"""Settings.from_env: every conversion, and a ConfigError naming the variable for every value
the service cannot use."""

from __future__ import annotations

import pytest

from books.settings import DERIVED_DEFAULTS, ConfigError, Settings, where_set


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
        ({"CLIENT_QUEUED_BOOKS": "-1"}, "MAX_QUEUED_BOOKS and CLIENT_QUEUED_BOOKS must be 0 (no bound) or more"),
        ({"CLIENT_BATCH_BYTES": "-1"}, "CLIENT_BATCH_BYTES and MAX_BATCH_BYTES must be 0 (no bound) or more"),
        ({"MAX_BATCH_BYTES": "-1"}, "CLIENT_BATCH_BYTES and MAX_BATCH_BYTES must be 0 (no bound) or more"),
        ({"ORIGIN_WAIT_MAX": "0"}, "ORIGIN_WAIT_MAX must be 1 or more (seconds)"),
        ({"GOODREADS_BASE_URL": "ftp://www.goodreads.com"}, "GOODREADS_BASE_URL must be an http(s) origin"),
        (
            {"RQ_DASHBOARD_USERNAME": "operator"},
            "set both RQ_DASHBOARD_USERNAME and RQ_DASHBOARD_PASSWORD, or neither",
        ),
        (
            {"RQ_DASHBOARD_PASSWORD": "pw"},
            "set both RQ_DASHBOARD_USERNAME and RQ_DASHBOARD_PASSWORD, or neither",
        ),
        (
            {"REQUEST_BODY_TIMEOUT": "0"},
            "REQUEST_BODY_TIMEOUT must be positive, MAX_CLIENT_CONNECTIONS 0 (no cap) or more",
        ),
        (
            {"MAX_CLIENT_CONNECTIONS": "-1"},
            "REQUEST_BODY_TIMEOUT must be positive, MAX_CLIENT_CONNECTIONS 0 (no cap) or more",
        ),
        ({"MAX_EXPORTS": "-1"}, "MAX_EXPORTS must be 0 (no cap) or more, LARGE_POST_BYTES positive"),
        ({"LARGE_POST_BYTES": "0"}, "MAX_EXPORTS must be 0 (no cap) or more, LARGE_POST_BYTES positive"),
        (
            {"CALLBACK_HOST_CONCURRENCY": "0"},
            "CALLBACK_TIMEOUT, CALLBACK_CHECK_INTERVAL and CALLBACK_HOST_CONCURRENCY must be positive",
        ),
        (
            {"DASHBOARD_GLOBAL_FAILURES": "-1"},
            "DASHBOARD_GLOBAL_FAILURES must be 0 (no budget) or more, DASHBOARD_OPERATOR_TTL at least 1",
        ),
        (
            {"DASHBOARD_OPERATOR_TTL": "0"},
            "DASHBOARD_GLOBAL_FAILURES must be 0 (no budget) or more, DASHBOARD_OPERATOR_TTL at least 1",
        ),
        (
            {"TRUSTED_PROXY_HOPS": "1"},
            "set both TRUSTED_PROXY_HOPS and TRUSTED_PROXY_ADDRESSES (the proxies' addresses), or neither",
        ),
        (
            {"TRUSTED_PROXY_ADDRESSES": "10.0.0.1"},
            "set both TRUSTED_PROXY_HOPS and TRUSTED_PROXY_ADDRESSES (the proxies' addresses), or neither",
        ),
        (
            {"TRUSTED_PROXY_HOPS": "1", "TRUSTED_PROXY_ADDRESSES": "10.0.0.0/8,proxy.local"},
            "TRUSTED_PROXY_ADDRESSES must list IP addresses or networks (CIDR), comma-separated",
        ),
    ],
)
def test_a_value_the_service_cannot_use_is_refused_by_name(environment, message):
    with pytest.raises(ConfigError) as refused:
        Settings.from_env(environment)
    assert str(refused.value) == message


def test_a_default_left_unset_follows_the_setting_it_depends_on():
    """FETCH_WAIT_MAX left unset is 5 s, or a quarter of JOB_TIMEOUT when that is less: JOB_TIMEOUT=3
    alone is accepted; only a FETCH_WAIT_MAX the operator set is held to the bound."""
    assert Settings.from_env({"JOB_TIMEOUT": "3"}).fetch_wait_max == 0.75
    assert Settings.from_env({"JOB_TIMEOUT": "600"}).fetch_wait_max == 5.0
    assert Settings.from_env({"JOB_TIMEOUT": "3", "FETCH_WAIT_MAX": "0.5"}).fetch_wait_max == 0.5
    with pytest.raises(ConfigError, match="FETCH_WAIT_MAX must be 0 or more and at most a quarter of JOB_TIMEOUT"):
        Settings.from_env({"JOB_TIMEOUT": "3", "FETCH_WAIT_MAX": "5"})


def test_every_derived_default_is_the_plain_default_with_the_plain_defaults():
    """Nothing set: each derived default is the dataclass's own default, so ``Settings()`` and
    ``Settings.from_env({})`` agree, and every one of them passes the checks."""
    derived = Settings.from_env({})
    assert all(default(derived) == getattr(Settings(), name) for name, default in DERIVED_DEFAULTS.items())


@pytest.mark.parametrize("job_timeout", ["1", "2", "3", "7", "19", "40"])
def test_any_job_timeout_alone_is_accepted(job_timeout):
    settings = Settings.from_env({"JOB_TIMEOUT": job_timeout})  # raises ConfigError if refused
    assert settings.fetch_wait_max == min(5, int(job_timeout) / 4)


def test_a_config_error_says_where_each_named_value_was_set(tmp_path):
    dotenv = tmp_path / ".env"
    dotenv.write_text(
        "# copied from .env.example\nRQ_DASHBOARD_USERNAME=operator\nRQ_DASHBOARD_PASSWORD=\nFETCH_RATE='2'\n"
    )
    message = "set both RQ_DASHBOARD_USERNAME and RQ_DASHBOARD_PASSWORD, or neither"
    from_file = {"RQ_DASHBOARD_USERNAME": "operator", "RQ_DASHBOARD_PASSWORD": ""}
    assert (
        where_set(message, from_file, dotenv)
        == " (RQ_DASHBOARD_USERNAME set in .env, which honcho and docker compose read)"
    )
    from_shell = {"RQ_DASHBOARD_USERNAME": "someone-else"}
    assert where_set(message, from_shell, dotenv) == " (RQ_DASHBOARD_USERNAME set in the environment)"
    assert where_set(message, from_shell, tmp_path / "missing") == " (RQ_DASHBOARD_USERNAME set in the environment)"
    both = {"FETCH_RATE": "2", "JOB_TIMEOUT": "3", "FETCH_WAIT_MAX": "5"}
    assert where_set("FETCH_RATE and FETCH_WAIT_MAX and JOB_TIMEOUT", both, dotenv) == (
        " (FETCH_RATE set in .env, which honcho and docker compose read;"
        " FETCH_WAIT_MAX, JOB_TIMEOUT set in the environment)"
    )
    assert where_set("FETCH_WAIT_MAX must be at most a quarter of JOB_TIMEOUT", {}, dotenv) == ""
