"""The README's worked examples return what the README says they return (issue 11, point 16)."""

from __future__ import annotations

import re
import time
from pathlib import Path

from fastapi.testclient import TestClient

from consentry.bootstrap import DEMO_BANK, DEMO_PDQ, ensure_admin_key, ensure_demo_bank
from consentry.config import Settings
from consentry.web.app import create_app

README = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")


def _readme_curl_url() -> str:
    m = re.search(r"curl -H \"Authorization: Bearer \$KEY\" \\\s*\n\s*\"(http://[^\"]+)\"", README)
    assert m, "the README's first curl example is missing"
    return m.group(1)


def test_readme_demo_match_example(tmp_path):
    url = _readme_curl_url()
    assert DEMO_PDQ in url
    settings = Settings(home=tmp_path)
    from consentry.db import open_database

    db = open_database(settings)
    key = ensure_admin_key(db)
    assert ensure_demo_bank(db)
    app = create_app(settings, db, background=False)
    with TestClient(app) as client:
        path = url.split("8000", 1)[1]
        r = client.get(path, headers={"Authorization": f"Bearer {key}"})
        assert r.status_code == 200
        body = r.json()
        distances = sorted(m["distance"] for m in body["matches"])
        # what the README promises, word for word
        said = re.search(r"returns the demo bank's (\w+) entries \(at distances ([\d, and]+?)[:)]", README)
        assert said, "README no longer says what the example returns"
        words = {"three": 3, "two": 2, "one": 1, "four": 4}
        assert len(distances) == words[said.group(1)]
        assert distances == [int(x) for x in re.findall(r"\d+", said.group(2))]
        assert {m["bank"] for m in body["matches"]} == {DEMO_BANK}
        assert body["verdict"]["decision"] == "review" and "verdict `review`" in README
        # ... and opens a review case (in the background, off the response path)
        deadline = time.time() + 10
        cases = []
        while time.time() < deadline and not cases:
            cases = client.get("/v1/cases", headers={"Authorization": f"Bearer {key}"}).json()
            cases = cases.get("cases", cases) if isinstance(cases, dict) else cases
            time.sleep(0.1)
        assert cases, "the README says the example opens a review case"
