"""HTTP API on SQLite and PostgreSQL: auth on every route, banks, match, hash, limits, errors."""

from __future__ import annotations

import io

import pytest
from fastapi.routing import APIRoute  # noqa: F401
from fastapi.testclient import TestClient

from consentry.config import Settings
from consentry.db.models import ROLES
from consentry.keys import KeyStore
from consentry.web.app import create_app, iter_api_routes
from imagegen import encode, scene

PUBLIC = {"/healthz", "/readyz", "/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"}
PDQ_A = "f8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22"


@pytest.fixture
def settings(tmp_path):
    return Settings(home=tmp_path)


@pytest.fixture
def app(db, settings):
    application = create_app(settings, db, background=False)
    yield application
    application.state.consentry.match_log.close()


@pytest.fixture
def client(app):
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


@pytest.fixture
def keys(db):
    store = KeyStore(db)
    return {role: store.create(role, f"test {role}")[0] for role in ROLES}


def auth(key):
    return {"Authorization": f"Bearer {key}"}


def _allowed(route: APIRoute) -> set[str] | None:
    for dep in route.dependant.dependencies:
        roles = getattr(dep.call, "allowed_roles", None)
        if roles is not None:
            return set(roles)
    return None


def _fill(path: str) -> str:
    return path.replace("{name}", "demo").replace("{entry_id}", "1")


def _public_reason(route: APIRoute) -> str | None:
    """Routes open to anonymous callers by design carry a ``web.auth.public(reason)`` dependency."""
    for dep in route.dependant.dependencies:
        reason = getattr(dep.call, "public_reason", None)
        if reason:
            return reason
    return None


def _session_auth(route: APIRoute) -> bool:
    """Console pages authenticate with session cookies: tests/test_console_http.py covers them."""
    return any(getattr(dep.call, "session_auth", False) for dep in route.dependant.dependencies)


def test_every_route_rejects_anonymous_and_wrong_roles(app, client, keys):
    routes = [r for r in iter_api_routes(app.routes)
              if r.path not in PUBLIC and not _public_reason(r) and not _session_auth(r)]
    assert len(routes) >= 15
    for route in routes:
        allowed = _allowed(route)
        assert allowed is not None, f"{route.path} declares no roles"
        assert "admin" in allowed
        for method in route.methods:
            url = _fill(route.path)
            r = client.request(method, url)
            assert r.status_code == 401, (method, url, r.status_code)
            assert r.headers["content-type"].startswith("application/problem+json")
            r = client.request(method, url, headers=auth("cst_not-a-real-key"))
            assert r.status_code == 401, (method, url)
            for role in set(ROLES) - allowed:
                r = client.request(method, url, headers=auth(keys[role]))
                assert r.status_code == 403, (method, url, role, r.status_code)
                assert r.json()["status"] == 403


def test_public_routes(client):
    assert client.get("/healthz").json()["status"] == "ok"
    assert client.get("/readyz").status_code == 200
    spec = client.get("/openapi.json").json()
    assert "/v1/match" in spec["paths"] and "/v1/banks" in spec["paths"]
    assert client.get("/docs").status_code == 200


def test_bank_and_entry_lifecycle_over_http(client, keys):
    cur = auth(keys["curator"])
    r = client.post("/v1/banks", json={"name": "hub", "kind": "ncii", "thresholds": {"pdq": 31}}, headers=cur)
    assert r.status_code == 201 and r.json()["kind"] == "ncii"
    assert client.post("/v1/banks", json={"name": "hub"}, headers=cur).status_code == 409
    assert client.post("/v1/banks", json={"name": "bad name!"}, headers=cur).status_code == 422
    assert [b["name"] for b in client.get("/v1/banks", headers=auth(keys["auditor"])).json()["banks"]] == ["hub"]
    r = client.post("/v1/banks/hub/entries", json={"signal_type": "pdq", "value": PDQ_A, "tags": ["t"]}, headers=cur)
    assert r.status_code == 201 and r.json()["created"]
    entry_id = r.json()["entry"]["id"]
    r = client.post("/v1/banks/hub/entries", json={"signal_type": "pdq", "value": "xyz"}, headers=cur)
    assert r.status_code == 422 and "PDQ" in r.json()["detail"]
    m = client.get("/v1/match", params={"signal_type": "pdq", "value": PDQ_A}, headers=auth(keys["matcher"]))
    assert m.status_code == 200
    body = m.json()
    assert body["matches"][0]["entry_id"] == entry_id and body["matches"][0]["distance"] == 0
    assert isinstance(body["matches"][0]["distance"], int)  # PDQ distances are integers, as in pytx
    assert body["matches"][0]["provenance"]["tags"] == ["t"]
    assert body["verdict"]["decision"] == "block" and body["verdict"]["block"] is True
    r = client.post(f"/v1/banks/hub/entries/{entry_id}/withdraw", headers=cur)
    assert r.json()["status"] == "withdrawn"
    m = client.get("/v1/match", params={"signal_type": "pdq", "value": PDQ_A}, headers=auth(keys["matcher"]))
    assert m.json()["matches"] == [] and m.json()["verdict"]["decision"] == "no_match"
    page = client.get("/v1/banks/hub/entries", params={"limit": 1}, headers=cur).json()
    assert page["entries"][0]["status"] == "withdrawn" and page["next_cursor"] == entry_id
    assert client.get("/v1/banks/hub/entries", params={"cursor": entry_id}, headers=cur).json()["entries"] == []
    assert client.get(f"/v1/banks/hub/entries/{entry_id}", headers=cur).json()["value"] == PDQ_A
    assert client.get("/v1/banks/hub/entries/999999", headers=cur).status_code == 404
    changes = client.get("/v1/changes", headers=cur).json()
    ops = [(c["op"], c.get("value")) for c in changes["changes"] if c["entry_id"]]
    assert ops == [("add", PDQ_A), ("withdraw", PDQ_A)]
    assert client.get("/v1/changes", params={"cursor": changes["next_cursor"]}, headers=cur).json()["changes"] == []
    r = client.patch("/v1/banks/hub", json={"description": "helpline"}, headers=cur)
    assert r.json()["description"] == "helpline"
    assert client.delete("/v1/banks/hub", headers=cur).json()["entries"] == 1
    assert client.get("/v1/banks/hub", headers=cur).status_code == 404


def test_match_and_hash_uploads(client, keys, testvectors):
    cur, mat = auth(keys["curator"]), auth(keys["matcher"])
    client.post("/v1/banks", json={"name": "b", "kind": "custom"}, headers=cur)
    dih = testvectors / "pdq" / "reg-test-input" / "dih"
    with open(dih / "bridge-1-original.jpg", "rb") as fh:
        r = client.post("/v1/banks/b/entries/file", files={"file": ("x.jpg", fh, "image/jpeg")}, headers=cur)
    assert r.status_code == 201 and r.json()["added"] == 3
    with open(dih / "bridge-4-rotate-270.jpg", "rb") as fh:
        r = client.post("/v1/match", files={"file": ("y.jpg", fh, "image/jpeg")}, headers=mat)
    body = r.json()
    assert r.status_code == 200 and body["query"]["content_type"] == "photo"
    assert [m["signal_type"] for m in body["matches"]] == ["pdq"]
    assert body["matches"][0]["transform"] != "original" and body["verdict"]["decision"] == "review"
    with open(testvectors / "pdq" / "misc-images" / "wee.jpg", "rb") as fh:
        r = client.post("/v1/hash", files={"file": ("wee.jpg", fh)}, headers=mat)
    assert r.json()["pdq"] == "6227401f601ff4ccafcc9fad4b0d95d371a2eb7265a3285234d228ca94deeb2d"
    r = client.post("/v1/match", files={"file": ("junk.jpg", io.BytesIO(b"\xff\xd8\xff" + b"\x00" * 99))}, headers=mat)
    assert r.status_code == 422 and r.headers["content-type"].startswith("application/problem+json")
    assert "Traceback" not in r.text


def test_import_export_over_http(client, keys):
    cur = auth(keys["curator"])
    client.post("/v1/banks", json={"name": "te", "kind": "custom"}, headers=cur)
    text = f"pdq {PDQ_A}\nmd5 {'ab' * 16}\npdq nothex\n".encode()
    r = client.post("/v1/banks/te/import", params={"format": "te"}, files={"file": ("l.txt", text)}, headers=cur)
    assert r.status_code == 200
    assert (r.json()["added"], r.json()["errors"]) == (2, 1)
    again = client.post("/v1/banks/te/import", params={"format": "te"}, files={"file": ("l.txt", text)}, headers=cur)
    assert again.json()["added"] == 0
    out = client.get("/v1/banks/te/export", params={"format": "te"}, headers=cur)
    assert out.status_code == 200 and PDQ_A in out.text and "ab" * 16 in out.text


def test_limits_rate_and_problem_json(db, tmp_path, keys):
    settings = Settings(home=tmp_path, max_upload_bytes=10_000, match_rate_limit=1.0)
    app = create_app(settings, db, background=False)
    with TestClient(app, raise_server_exceptions=False) as c:
        mat = auth(keys["matcher"])
        big = encode(scene(400, 300), "PNG") + b"\0" * 20_000  # trailing bytes: still over the limit
        assert len(big) > 10_000
        r = c.post("/v1/match", files={"file": ("big.png", big)}, headers=mat)
        assert r.status_code == 413 and r.json()["type"].endswith("/too-large")
        codes = [c.get("/v1/match", params={"signal_type": "md5", "value": "0" * 32}, headers=mat).status_code
                 for _ in range(5)]
        assert codes[0] == 200 and 429 in codes
        r429 = c.get("/v1/match", params={"signal_type": "md5", "value": "0" * 32}, headers=mat)
        assert r429.status_code == 429 and int(r429.headers["Retry-After"]) >= 1
        r = c.get("/v1/match", params={"signal_type": "nope", "value": "x"}, headers=auth(keys["admin"]))
        assert r.status_code == 422 and r.json()["title"]
    app.state.consentry.match_log.close()


def test_pixel_limit_is_422(db, tmp_path, keys):
    app = create_app(Settings(home=tmp_path, limits=Settings().limits.with_(max_pixels=1000)), db, background=False)
    with TestClient(app, raise_server_exceptions=False) as c:
        # the three media routes agree: an over-limit picture is a 422 problem, not a 200 with an error
        for route in ("/v1/hash", "/v1/match", "/v1/analyze"):
            r = c.post(route, files={"file": ("s.png", encode(scene(100, 100), "PNG"))}, headers=auth(keys["matcher"]))
            assert r.status_code == 422 and "pixel" in r.json()["detail"], (route, r.text)
            assert r.json()["type"].endswith("/media-too-large"), route
    app.state.consentry.match_log.close()


def test_match_requests_are_logged_without_media(db, client, keys):
    from sqlalchemy import select

    from consentry.db.models import MatchLog

    client.get("/v1/match", params={"signal_type": "md5", "value": "1" * 32}, headers=auth(keys["matcher"]))
    client.app.state.consentry.match_log.close()
    with db.session() as s:
        rows = list(s.scalars(select(MatchLog)))
    assert len(rows) == 1 and rows[0].route == "GET /v1/match" and rows[0].signal_types == "md5"
    assert not hasattr(rows[0], "value")


def test_slow_requests_time_out_with_504(db, tmp_path, keys, testvectors):
    app = create_app(Settings(home=tmp_path, request_timeout=0.001), db, background=False)
    with TestClient(app, raise_server_exceptions=False) as c:
        with open(testvectors / "pdq" / "bridge-mods" / "aaa-orig.jpg", "rb") as fh:
            r = c.post("/v1/hash", files={"file": ("a.jpg", fh)}, headers=auth(keys["matcher"]))
        assert r.status_code == 504 and r.headers["content-type"].startswith("application/problem+json")
        assert c.get("/healthz").status_code in (200, 504)
    app.state.consentry.match_log.close()


def test_an_uploaded_file_matches_a_sha1_entry(client, keys):
    """NCMEC hash lists carry SHA-1 fingerprints: a file sent to /v1/match meets them (its MD5 and
    SHA-256 alone would not)."""
    import hashlib

    cur, mat = auth(keys["curator"]), auth(keys["matcher"])
    client.post("/v1/banks", json={"name": "ncmec", "kind": "custom"}, headers=cur)
    data = encode(scene(seed=91), "PNG")
    sha1 = hashlib.sha1(data).hexdigest()
    r = client.post("/v1/banks/ncmec/entries", json={"signal_type": "sha1", "value": sha1}, headers=cur)
    assert r.status_code == 201, r.text
    r = client.post("/v1/match", files={"file": ("a.png", data, "image/png")}, headers=mat)
    assert [(m["signal_type"], m["bank"]) for m in r.json()["matches"]] == [("sha1", "ncmec")]
    other = client.post("/v1/match", files={"file": ("b.png", encode(scene(seed=92), "PNG"), "image/png")}, headers=mat)
    assert other.json()["matches"] == []
