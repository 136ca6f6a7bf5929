from fastapi.testclient import TestClient

from consentry import __version__
from consentry.web.app import create_app


def test_healthz():
    client = TestClient(create_app())
    r = client.get("/healthz")
    assert r.status_code == 200
    assert r.json() == {"status": "ok", "version": __version__}
