"""rq-dashboard at /rqstatus: renders in headless Chromium with its static files, and refuses anonymous users."""

from __future__ import annotations

import base64
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import requests
from rq.job import Job
from rq.registry import FailedJobRegistry

from books.jobs import JobSerializer
from books.settings import Settings
from tests.listener import Listener
from tests.processes import wait_until

pytestmark = [pytest.mark.e2e]
USER, PASSWORD = "operator", "s3cret-for-tests"
AUTH = (USER, PASSWORD)


@pytest.fixture
def service(make_service):
    return make_service(RQ_DASHBOARD_USERNAME=USER, RQ_DASHBOARD_PASSWORD=PASSWORD)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/rqstatus/"),
        ("GET", "/rqstatus/0/view/workers"),
        ("GET", "/rqstatus/0/data/queues.json"),
        ("GET", "/rqstatus/0/data/workers.json"),
        ("GET", "/rqstatus/0/data/job/book-1.json"),
        ("GET", "/rqstatus/static/js/dashboard.js"),
        ("POST", "/rqstatus/job/book-1/requeue"),
        ("GET", "/rqstatus/requeue/bookInfoParser"),
        ("POST", "/rqstatus/job/book-1/delete"),
        ("POST", "/rqstatus/queue/bookInfoParser/queued/empty"),
        ("POST", "/rqstatus/queue/bookInfoParser/compact"),
    ],
)
def test_every_dashboard_route_refuses_anonymous_users(service, method, path):
    for auth in (None, (USER, "wrong"), ("someone", PASSWORD)):
        response = requests.request(method, f"{service.url}{path}", auth=auth, timeout=10)
        assert response.status_code == 401
        assert response.headers["WWW-Authenticate"].startswith("Basic")
        assert response.json()["error"] == "unauthorized"


def test_destructive_actions_are_disabled_even_for_operators(service, redis):
    requests.post(f"{service.url}/parseGoodreadsLinks", json=["goodreads.com/book/show/1"], timeout=10)
    delete = requests.post(f"{service.url}/rqstatus/job/book-1/delete", auth=AUTH, timeout=10)
    empty = requests.post(f"{service.url}/rqstatus/queue/bookInfoParser/queued/empty", auth=AUTH, timeout=10)
    assert delete.json() == {"status": "DISABLED"} and empty.json() == {"status": "DISABLED"}
    assert redis.exists("rq:job:book-1")


@contextmanager
def chromium(tmp_path: Path) -> Iterator[Any]:
    """Headless Chromium, logged in to the dashboard (HTTP Basic on every request)."""
    if not shutil.which("chromedriver"):
        pytest.fail("chromedriver is not installed: apt-get install chromium chromium-driver (done by .ci/run)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service as DriverService

    options = webdriver.ChromeOptions()
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-dev-shm-usage",
        "--no-first-run",
        f"--user-data-dir={tmp_path / 'profile'}",
    ):
        options.add_argument(flag)
    options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    driver = webdriver.Chrome(options=options, service=DriverService(shutil.which("chromedriver")))
    try:
        token = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        driver.execute_cdp_cmd("Network.enable", {})
        driver.execute_cdp_cmd("Network.setExtraHTTPHeaders", {"headers": {"Authorization": f"Basic {token}"}})
        yield driver
    finally:
        driver.quit()


@pytest.mark.browser
def test_the_dashboard_renders_in_headless_chromium(service, tmp_path):
    requests.post(f"{service.url}/parseGoodreadsLinks", json=["goodreads.com/book/show/1"], timeout=10)
    with chromium(tmp_path) as driver:
        driver.get(f"{service.url}/rqstatus/")
        wait_until(
            lambda: "bookInfoParser" in driver.find_element("tag name", "body").text,
            20,
            message="the queue list to load",
        )
        resources = driver.execute_script(
            "return performance.getEntriesByType('resource').map(e => [e.name, e.responseStatus])"
        )
        static = [(name, status) for name, status in resources if "/rqstatus/static/" in name]
        assert any(name.endswith(".js") for name, _ in static) and any(name.endswith(".css") for name, _ in static)
        assert all(status == 200 for _, status in static), static
        assert driver.title
        driver.save_screenshot(str(tmp_path / "dashboard.png"))


# Markup that runs script once a page inserts it as HTML (no spaces: a callback URL may hold none).
MARKUP = "<img/src='x'/onerror='window.injected=1'>"


@pytest.mark.browser
def test_markup_in_a_jobs_description_meta_or_error_shows_as_text_in_the_dashboard(make_service, redis, tmp_path):
    """A callback URL holding markup, whose delivery fails (its error names the URL), and a job
    whose description and meta hold markup: the dashboard's job pages and lists show the
    markup as text, and no script of it runs."""
    with Listener(500) as listener:
        service = make_service(
            RQ_DASHBOARD_USERNAME=USER,
            RQ_DASHBOARD_PASSWORD=PASSWORD,
            CALLBACK_ALLOWED_HOSTS=f"127.0.0.1:{listener.port}",
            CALLBACK_SECRET="a-callback-secret",
            CALLBACK_CHECK_INTERVAL="1",
            CALLBACK_RETRY_INTERVALS="1",
        )
        answer = requests.post(
            f"{service.url}/parseGoodreadsLinks",
            params={"callback_url": f"{listener.url}/done?{MARKUP}"},
            json=["goodreads.com/book/show/1"],
            timeout=10,
        )
        assert answer.status_code == 202
        callbacks = Settings().callback_queue_name
        failed = wait_until(
            lambda: FailedJobRegistry(callbacks, connection=redis).get_job_ids(), 60, 0.2, "the callback to fail"
        )
    crafted = Job.create(
        "worker.tasks.parse_book",
        args=("1",),
        id="crafted",
        description=f"parse book {MARKUP}",
        meta={"title": MARKUP},
        connection=redis,
        serializer=JobSerializer,
    )
    crafted.save()
    pages = [
        f"/rqstatus/0/view/job/{failed[0]}",
        "/rqstatus/0/view/job/crafted",
        f"/rqstatus/0/view/jobs/{callbacks}/failed/8/asc/1",
    ]
    with chromium(tmp_path) as driver:
        for page in pages:
            driver.get(f"{service.url}{page}")
            shown = wait_until(
                lambda: MARKUP in driver.find_element("tag name", "body").text, 20, 0.2, f"{page} to show the markup"
            )
            assert shown and driver.execute_script("return window.injected") is None, page
            assert driver.find_elements("css selector", "img[onerror]") == [], page
        assert "answered HTTP 500" in driver.find_element("tag name", "body").text
