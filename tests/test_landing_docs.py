"""The public front: ``/`` (a landing page with links to the service's doors) and ``/docs``
(Swagger UI from packaged files, no CDN, with the bearer scheme so Authorize can send a key)."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from conftest import CHROMIUM, CHROMIUM_ARGS, needs_chromium
from consentry import __version__
from consentry.config import Settings
from consentry.web.app import create_app

EXTERNAL = re.compile(r"""(?:https?:)?//[a-z0-9.-]+""", re.I)


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    app = create_app(Settings(home=tmp_path_factory.mktemp("front")), background=False)
    with TestClient(app) as c:
        yield c
    app.state.consentry.match_log.close()


def _refs(html: str) -> list[str]:
    return re.findall(r"""(?:href|src)=["']([^"']+)["']""", html)


def test_landing_page_names_the_instance_and_links_its_doors(client):
    r = client.get("/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert __version__ in r.text
    refs = _refs(r.text)
    for door in ("/console", "/submit", "/docs", "/healthz"):
        assert door in refs
    assert not any(EXTERNAL.match(u) for u in refs)
    assert "default-src 'none'" in r.headers["content-security-policy"]
    for u in refs:
        if u.startswith("/static/"):
            assert client.get(u).status_code == 200


def test_landing_page_without_victim_hub_has_no_victim_link(tmp_path):
    app = create_app(Settings(home=tmp_path, victim_hub_bank=""), background=False)
    with TestClient(app) as c:
        assert "/submit" not in _refs(c.get("/").text)
    app.state.consentry.match_log.close()


def test_docs_load_nothing_from_other_sites(client):
    r = client.get("/docs")
    assert r.status_code == 200
    assert not EXTERNAL.search(r.text), EXTERNAL.findall(r.text)
    refs = _refs(r.text)
    kinds = {}
    for u in refs:
        a = client.get(u)
        assert a.status_code == 200, u
        kinds[u.rsplit(".", 1)[-1]] = a.headers["content-type"]
    assert "javascript" in kinds["js"] and "text/css" in kinds["css"]
    assert len(client.get([u for u in refs if u.endswith(".js")][0]).content) > 100_000  # the real bundle
    assert client.get("/redoc").status_code == 404  # ReDoc would load from a CDN: off


def test_openapi_declares_the_bearer_scheme(client):
    spec = client.get("/openapi.json").json()
    assert spec["components"]["securitySchemes"]["bearer"] == {
        "type": "http", "scheme": "bearer", "description": spec["components"]["securitySchemes"]["bearer"]["description"]}
    assert spec["paths"]["/v1/match"]["get"]["security"] == [{"bearer": []}]
    assert spec["paths"]["/v1/banks"]["post"]["security"] == [{"bearer": []}]
    assert "security" not in spec["paths"]["/healthz"]["get"]
    victim = [op for p, ops in spec["paths"].items() if p.startswith("/v1/victim") for op in ops.values()]
    assert victim and all("security" not in op for op in victim)


@needs_chromium
@pytest.mark.slow
def test_landing_page_fits_a_phone(client):
    """390 px wide (an iPhone 12-15): no sideways scrolling, every door on screen and tappable."""
    from playwright.sync_api import sync_playwright

    def serve(route):  # the browser talks to the in-process app
        path = route.request.url.split("consentry.test", 1)[1]
        r = client.get(path)
        route.fulfill(status=r.status_code, headers=dict(r.headers), body=r.content)

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 390, "height": 844}, device_scale_factor=3, is_mobile=True)
            page.route("http://consentry.test/**", serve)
            page.goto("http://consentry.test/")
            assert page.evaluate("document.documentElement.scrollWidth") <= 390
            assert page.evaluate("getComputedStyle(document.body).fontFamily")  # the stylesheet applied
            assert page.evaluate("getComputedStyle(document.querySelector('.doors a')).fontWeight") == "600"
            for door in ("/submit", "/console", "/docs", "/healthz"):
                box = page.locator(f"a[href='{door}']").bounding_box()
                assert box and box["x"] >= 0 and box["x"] + box["width"] <= 390 and box["height"] >= 20, door
        finally:
            browser.close()
