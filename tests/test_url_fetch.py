"""Hash, match and add by URL (issue 22 point 1): opt-in keys, allow list, no private addresses
(checked on the resolved address that is then connected to), same-host redirects only, size and
time limits. A local test server on loopback is reached only through the test-only
``url_fetch_allow_loopback`` setting; the default refuses it. Benign drawn images only."""

from __future__ import annotations

import io
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from fastapi.testclient import TestClient

from consentry.config import Settings
from consentry.keys import KeyStore
from consentry.media import fetch as fetch_mod
from consentry.media.fetch import FetchPolicy, UrlRefused, address_allowed, check_url, fetch_url
from consentry.web.app import create_app
from imagegen import encode, scene

PHOTO = encode(scene(seed=3), "png")


class _Handler(BaseHTTPRequestHandler):
    seen_hosts: list[str] = []

    def log_message(self, *args):  # quiet
        pass

    def _send(self, status: int, body: bytes = b"", headers: dict | None = None):
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        if "Content-Length" not in (headers or {}):
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if body:
            self.wfile.write(body)

    def do_GET(self):  # noqa: N802
        _Handler.seen_hosts.append(self.headers.get("Host", ""))
        port = self.server.server_address[1]
        path = self.path
        if path == "/media/photo.png":
            self._send(200, PHOTO, {"Content-Type": "image/png"})
        elif path == "/media/same":
            self._send(302, headers={"Location": "/media/photo.png"})
        elif path == "/media/other":
            self._send(302, headers={"Location": f"http://localhost:{port}/media/photo.png"})
        elif path.startswith("/media/loop"):
            self._send(302, headers={"Location": "/media/loop" + str(int(path[11:] or 0) + 1)})
        elif path == "/media/to-file":
            self._send(302, headers={"Location": "file:///etc/passwd"})
        elif path == "/media/slow":
            self.send_response(200)
            self.send_header("Content-Length", "100000")
            self.end_headers()
            try:
                for _ in range(100):
                    self.wfile.write(b"x")
                    self.wfile.flush()
                    time.sleep(0.2)
            except OSError:
                pass
        elif path == "/media/text":
            self._send(200, b"just some text, not media", {"Content-Type": "text/plain"})
        else:
            self._send(404, b"no")


@pytest.fixture(scope="module")
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def _policy(**kw) -> FetchPolicy:
    base = dict(allowlist=("127.0.0.1", "localhost"), max_bytes=10 << 20, timeout=5.0, max_redirects=3,
                allow_loopback=True)
    base.update(kw)
    return FetchPolicy(**base)


# ------------------------------------------------------------------ the fetcher
@pytest.mark.parametrize("ip,ok", [
    ("93.184.216.34", True), ("2606:4700:4700::1111", True),
    ("127.0.0.1", False), ("127.9.9.9", False), ("::1", False), ("10.1.2.3", False), ("172.16.0.1", False),
    ("192.168.1.1", False), ("169.254.169.254", False), ("fe80::1", False), ("fc00::1", False),
    ("0.0.0.0", False), ("::", False), ("100.64.0.1", False), ("224.0.0.1", False), ("255.255.255.255", False),
    ("::ffff:127.0.0.1", False), ("::ffff:10.0.0.1", False), ("::ffff:93.184.216.34", True),
    ("::127.0.0.1", False), ("2002:7f00:1::", False), ("not-an-ip", False),
])
def test_address_policy(ip, ok):
    assert address_allowed(ip) is ok


def test_loopback_override_is_loopback_only():
    assert address_allowed("127.0.0.1", allow_loopback=True)
    assert address_allowed("::ffff:127.0.0.1", allow_loopback=True)
    assert not address_allowed("10.0.0.1", allow_loopback=True)
    assert not address_allowed("169.254.169.254", allow_loopback=True)


@pytest.mark.parametrize("url", [
    "file:///etc/passwd", "ftp://127.0.0.1/x", "gopher://127.0.0.1/", "http://user:pw@127.0.0.1/x",
    "http://127.0.0.1@evil.example/x", "http://evil.example/x", "http://127.0.0.1.evil.example/x",
    "http:///x", "http://127.0.0.1/media/../admin", "http://127.0.0.1/%2e%2e/admin", "not a url",
    "http://127.0.0.1:99999/x",
])
def test_bad_or_unlisted_urls_are_refused(url):
    with pytest.raises(UrlRefused):
        check_url(url, ("127.0.0.1", "https://media.example.com/uploads/"))


def test_prefix_and_wildcard_allow_list():
    allow = ("https://media.example.com/uploads/", "*.cdn.example.org")
    assert check_url("https://media.example.com/uploads/a.jpg", allow)[1] == "media.example.com"
    assert check_url("https://x.cdn.example.org/a.jpg", allow)[1] == "x.cdn.example.org"
    for url in ("https://media.example.com/other/a.jpg", "http://media.example.com/uploads/a.jpg",
                "https://media.example.com.evil.net/uploads/a.jpg", "https://cdn.example.org.evil.net/a",
                "https://evilcdn.example.org/a", "https://media.example.com:8443/uploads/a.jpg"):
        with pytest.raises(UrlRefused):
            check_url(url, allow)


def test_fetch_from_a_local_server(server):
    body, final = fetch_url(server + "/media/photo.png", _policy())
    assert body == PHOTO and final.endswith("/media/photo.png")
    body, final = fetch_url(server + "/media/same", _policy())  # same-host redirect
    assert body == PHOTO


def test_default_policy_refuses_loopback(server):
    with pytest.raises(UrlRefused, match="non-public"):
        fetch_url(server + "/media/photo.png", _policy(allow_loopback=False))
    port = server.rsplit(":", 1)[1]
    for host in (f"[::ffff:127.0.0.1]:{port}", f"localhost:{port}", f"[::1]:{port}"):
        with pytest.raises(UrlRefused):
            fetch_url(f"http://{host}/media/photo.png",
                      _policy(allow_loopback=False, allowlist=("127.0.0.1", "localhost", "::ffff:127.0.0.1", "::1")))


def test_hostile_redirects(server):
    with pytest.raises(UrlRefused, match="another host"):
        fetch_url(server + "/media/other", _policy())
    with pytest.raises(UrlRefused, match="redirects"):
        fetch_url(server + "/media/loop0", _policy())
    with pytest.raises(UrlRefused, match="http and https"):
        fetch_url(server + "/media/to-file", _policy())


def test_slow_body_and_size_limits(server):
    t0 = time.monotonic()
    with pytest.raises(fetch_mod.UrlTooSlow):
        fetch_url(server + "/media/slow", _policy(timeout=1.0))
    assert time.monotonic() - t0 < 4
    with pytest.raises(fetch_mod.UrlTooLarge):
        fetch_url(server + "/media/photo.png", _policy(max_bytes=100))
    with pytest.raises(fetch_mod.UrlFetchFailed, match="404"):
        fetch_url(server + "/media/nothing", _policy())
    with pytest.raises(UrlRefused, match="off"):
        fetch_url(server + "/media/photo.png", _policy(allowlist=()))


def test_connects_to_the_checked_address_only(server, monkeypatch):
    """A name is resolved once and every address checked; the connection goes to that address
    with the original Host header, so a rebinding resolver gets no second chance."""
    port = int(server.rsplit(":", 1)[1])
    real = socket.getaddrinfo
    calls: list[str] = []

    def fake(host, *a, **kw):
        calls.append(host)
        if host == "media.test":
            return real("127.0.0.1", port, type=socket.SOCK_STREAM)
        if host == "rebind.test":  # one public and one private address: refused
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.216.34", port)),
                    (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port))]
        if host == "private.test":
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.0.0.7", port))]
        return real(host, *a, **kw)

    monkeypatch.setattr(fetch_mod.socket, "getaddrinfo", fake)
    _Handler.seen_hosts.clear()
    body, _ = fetch_url(f"http://media.test:{port}/media/photo.png", _policy(allowlist=("media.test",)))
    assert body == PHOTO
    # the name was resolved once; the socket was opened on the checked literal address
    assert calls in (["media.test"], ["media.test", "127.0.0.1"]) and _Handler.seen_hosts == [f"media.test:{port}"]
    with pytest.raises(UrlRefused):
        fetch_url(f"http://rebind.test:{port}/media/photo.png",
                  _policy(allowlist=("rebind.test",), allow_loopback=False))
    with pytest.raises(UrlRefused):
        fetch_url(f"http://private.test:{port}/media/photo.png",
                  _policy(allowlist=("private.test",), allow_loopback=False))


# ------------------------------------------------------------------ the routes
@pytest.fixture
def api(db, tmp_path):
    def make(**kw):
        settings = Settings(home=tmp_path, url_allowlist=("127.0.0.1",), url_fetch_allow_loopback=True,
                            url_fetch_timeout=3.0).with_(**kw)
        return create_app(settings, db, background=False)

    return make


def _keys(db):
    store = KeyStore(db)
    return {"url": store.create("curator", "url", allow_url=True)[0],
            "plain": store.create("curator", "plain")[0],
            "matcher_url": store.create("matcher", "m", allow_url=True)[0]}


def test_hash_match_and_add_by_url(api, db, server):
    keys = _keys(db)
    h = {"Authorization": f"Bearer {keys['url']}"}
    app = api()
    with TestClient(app, raise_server_exceptions=False) as c:
        url = server + "/media/photo.png"
        r = c.post("/v1/hash/url", json={"url": url}, headers=h)
        assert r.status_code == 200, r.text
        direct = c.post("/v1/hash", files={"file": ("p.png", io.BytesIO(PHOTO), "image/png")}, headers=h).json()
        assert (r.json()["pdq"], r.json()["sha256"]) == (direct["pdq"], direct["sha256"])
        assert r.json()["url"] == url and r.json()["warnings"] == direct["warnings"]
        c.post("/v1/banks", json={"name": "v", "kind": "ncii"}, headers=h)
        r = c.post("/v1/banks/v/entries/url", json={"url": url, "tags": ["t"]}, headers=h)
        assert r.status_code == 201, r.text
        assert {e["signal_type"] for e in r.json()["entries"]} == {"md5", "sha256", "pdq"}
        assert all(e["source"] == "api-url" for e in r.json()["entries"])
        assert r.json()["url"] == url and r.json()["hash"]["sha256"] == direct["sha256"] and r.json()["added"] == 3
        r = c.post("/v1/match/url", json={"url": server + "/media/same"},
                   headers={"Authorization": f"Bearer {keys['matcher_url']}"})
        assert r.status_code == 200, r.text
        assert r.json()["verdict"]["decision"] == "block" and r.json()["query"]["url"].endswith("/media/photo.png")  # the final URL
        # a key without --allow-url
        r = c.post("/v1/hash/url", json={"url": url}, headers={"Authorization": f"Bearer {keys['plain']}"})
        assert r.status_code == 403
        for bad, status in (("file:///etc/passwd", 422), (server + "/media/other", 422),
                            (server + "/media/text", 422), (server + "/media/nothing", 502),
                            ("http://10.0.0.1/x.png", 422), ("http://[::ffff:127.0.0.1]/x", 422)):
            r = c.post("/v1/hash/url", json={"url": bad}, headers=h)
            assert r.status_code == status, (bad, r.text)
            assert r.headers["content-type"].startswith("application/problem+json")
        assert c.post("/v1/hash/url", json={}, headers=h).status_code == 422


def test_url_routes_refuse_loopback_by_default_and_limits(api, db, server):
    keys = _keys(db)
    h = {"Authorization": f"Bearer {keys['url']}"}
    with TestClient(api(url_fetch_allow_loopback=False), raise_server_exceptions=False) as c:
        r = c.post("/v1/hash/url", json={"url": server + "/media/photo.png"}, headers=h)
        assert r.status_code == 422 and "non-public" in r.json()["detail"]
    with TestClient(api(url_allowlist=()), raise_server_exceptions=False) as c:
        r = c.post("/v1/hash/url", json={"url": server + "/media/photo.png"}, headers=h)
        assert r.status_code == 422 and "off" in r.json()["detail"]
    with TestClient(api(max_upload_bytes=1000), raise_server_exceptions=False) as c:
        r = c.post("/v1/hash/url", json={"url": server + "/media/photo.png"}, headers=h)
        assert r.status_code == 413
    with TestClient(api(url_fetch_timeout=1.0), raise_server_exceptions=False) as c:
        r = c.post("/v1/hash/url", json={"url": server + "/media/slow"}, headers=h)
        assert r.status_code == 504
