"""rq-dashboard at /rqstatus: renders in headless Chromium with its static files, and refuses anonymous users."""

from __future__ import annotations

import base64
import shutil

import pytest
import requests

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


@pytest.mark.browser
def test_the_dashboard_renders_in_headless_chromium(service, tmp_path):
    if not shutil.which("chromedriver"):
        pytest.fail("chromedriver is not installed: apt-get install chromium chromium-driver (done by .ci/run)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service as DriverService

    requests.post(f"{service.url}/parseGoodreadsLinks", json=["goodreads.com/book/show/1"], timeout=10)
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
    finally:
        driver.quit()
