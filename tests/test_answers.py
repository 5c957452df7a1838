"""Every answer is JSON, in process: Flask's routing redirects, and each link echoed as it was sent."""

from __future__ import annotations

import json

import pytest

BOOK = "https://www.goodreads.com/book/show/5907"


@pytest.mark.parametrize(
    ("path", "location"),
    [
        ("/rqstatus", "/rqstatus/"),  # the trailing slash of a blueprint's root
        ("/batches//books", "/batches/books"),  # doubled slashes merged
        ("/rqstatus?x=1", "/rqstatus/?x=1"),
    ],
)
def test_routing_redirects_answer_json_and_keep_308_and_location(client, path, location):
    response = client.get(path)
    assert response.status_code == 308
    assert response.headers["Location"] == f"http://localhost{location}"
    assert response.is_json, response.data[:200]
    assert response.json == {"error": "permanent_redirect", "message": f"the resource is at http://localhost{location}"}


def test_a_routing_redirect_is_followed_to_the_page(client):
    response = client.get("/rqstatus", follow_redirects=True)
    assert response.status_code == 200
    assert [(r.status_code, r.request.path) for r in response.history] == [(308, "/rqstatus")]
    assert response.request.path == "/rqstatus/"


def test_links_that_are_not_strings_are_echoed_as_compact_json(client):
    nested = {"url": BOOK, "tags": ["a", "b"], "n": None}
    long_list = list(range(200))
    links = [BOOK, 42, None, True, nested, long_list, ["ü"]]
    response = client.post("/parseGoodreadsLinks", json=links)
    assert response.status_code == 202, response.json
    echoed = [result["link"] for result in response.json["results"]]
    assert echoed[:5] == [BOOK, "42", "null", "true", json.dumps(nested, separators=(",", ":"))]
    assert echoed[5] == json.dumps(long_list, separators=(",", ":"))[:300] and len(echoed[5]) == 300
    assert echoed[6] == '["ü"]'
    assert [result["outcome"] for result in response.json["results"]] == ["queued", *["rejected"] * 6]
    assert response.json["results"][1]["reason"] == "a link must be a string, not a number"


def test_a_batch_lists_the_echoed_links(client):
    batch_id = client.post("/parseGoodreadsLinks", json=[BOOK, {"url": BOOK}]).json["batch_id"]
    links = client.get(f"/batches/{batch_id}").json["links"]
    assert [link["link"] for link in links] == [BOOK, json.dumps({"url": BOOK}, separators=(",", ":"))]
