"""The review console in a real browser: Debian's Chromium (headless) driven by Playwright against
a real uvicorn server on a free port, SQLite, evidence vault on.

Acceptance (issue 6, part B): log in, open a case, the image is blurred and greyscale (computed
style), a reveal shows it and is logged (audit log + exposure counter) and fades back; confirm
adds the hash to the bank and the next ``GET /v1/match`` finds it; four-eyes holds a shared-bank
addition until a second reviewer approves. Screenshots of the queue and the case view are saved
under ``$CONSENTRY_TEST_OUTPUT`` (or pytest's tmp_path); the path is printed.

Only benign pictures (landscapes drawn by ``imagegen``).
"""

from __future__ import annotations

import base64
import io
import os
import socket
import threading
import time
from pathlib import Path

import httpx
from PIL import Image
import pytest
from sqlalchemy import select

from consentry.banks.service import BankService
from consentry.config import Settings
from consentry.db import Database
from consentry.db.models_review import Decision, Reveal
from consentry.keys import KeyStore
from consentry.review.audit import AuditLog
from consentry.review.cases import CaseService, ItemInput
from consentry.review.users import UserService
from consentry.review.vault import Vault
from conftest import CHROMIUM, CHROMIUM_ARGS, needs_chromium
from imagegen import encode, scene

PASSWORD = "a long benign passphrase"
FILTER = "() => getComputedStyle(document.querySelector('.media-frame .media')).filter"

pytestmark = needs_chromium


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def world(tmp_path):
    """A seeded database, a running server and a matcher API key."""
    import uvicorn

    from consentry.web.app import create_app

    settings = Settings(home=tmp_path, index_refresh_seconds=0.1).with_(
        vault_key=base64.b64encode(os.urandom(32)).decode(), exposure_budget=5)
    url = f"sqlite:///{tmp_path / 'consentry.db'}"
    db = Database(url)
    db.upgrade()
    banks = BankService(db)
    banks.create_bank("known", "ncii")
    banks.create_bank("partners", "ncii", shared=True)
    users = UserService(db)
    for name in ("alice", "bob"):
        users.create(name, PASSWORD, "moderator")
    users.create("audrey", PASSWORD, "auditor")
    cases = CaseService(db, banks, vault=Vault.from_settings(settings, db))
    seeded = {
        "a": cases.submit(ItemInput(media=encode(scene(seed=21), "PNG")), uploader_id="acct-a", priority=90),
        "b": cases.submit(ItemInput(media=encode(scene(seed=22), "PNG")), uploader_id="acct-b", priority=60),
        "c": cases.submit(ItemInput(media=encode(scene(seed=23), "PNG")), uploader_id="acct-c", priority=10),
    }
    key = KeyStore(db).create("matcher", "browser test")[0]

    server_db = Database(url)
    app = create_app(settings, server_db, background=True)
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    base = f"http://127.0.0.1:{port}"
    while time.monotonic() < deadline:
        try:
            if httpx.get(base + "/readyz", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    else:
        pytest.fail("the server did not become ready")
    out = Path(os.environ.get("CONSENTRY_TEST_OUTPUT") or tmp_path / "screenshots")
    out.mkdir(parents=True, exist_ok=True)
    try:
        yield {"base": base, "db": db, "cases": seeded, "key": key, "out": out, "case_service": cases}
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        server_db.dispose()
        db.dispose()


def _match(world, pdq: str) -> list[dict]:
    r = httpx.get(world["base"] + "/v1/match", params={"signal_type": "pdq", "value": pdq},
                  headers={"Authorization": f"Bearer {world['key']}"}, timeout=10)
    assert r.status_code == 200, r.text
    return r.json()["matches"]


def _login(page, base: str, username: str) -> None:
    page.goto(base + "/console/queue")
    assert "/console/login" in page.url  # anonymous → the login page
    page.fill("#username", username)
    page.fill("#password", PASSWORD)
    page.click("#login-submit")
    page.wait_for_url("**/console/queue")


def _logout(page) -> None:
    page.click("text=Log out")
    page.wait_for_url("**/console/login")


def test_review_flow_in_chromium(world):
    from playwright.sync_api import sync_playwright

    base, db, seeded, out = world["base"], world["db"], world["cases"], world["out"]
    pdq_a, pdq_b = seeded["a"].items[0].pdq, seeded["b"].items[0].pdq
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        context = browser.new_context(viewport={"width": 1200, "height": 900})
        page = context.new_page()
        try:
            # a wrong password is refused and audited
            page.goto(base + "/console/login")
            page.fill("#username", "alice")
            page.fill("#password", "not the password")
            page.click("#login-submit")
            assert page.locator("p.error").is_visible()
            assert page.input_value("#username") == "alice"  # kept; only the password is cleared
            assert page.input_value("#password") == ""
            assert page.evaluate("() => document.activeElement.id") == "password"
            page.screenshot(path=str(out / "login_failed.png"), full_page=True)

            _login(page, base, "alice")
            cookie = next(c for c in context.cookies() if c["name"] == "consentry_session")
            assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
            rows = page.locator("#cases tbody tr")
            assert rows.count() == 3
            assert rows.first.get_attribute("data-case") == str(seeded["a"].id)  # highest priority first
            page.screenshot(path=str(out / "queue.png"), full_page=True)

            # open case A: the image is blurred and greyscale until a logged reveal
            page.click(f"a[href='/console/cases/{seeded['a'].id}']")
            page.wait_for_selector(".media-frame img.media")
            page.wait_for_function("() => document.querySelector('.media-frame img.media').naturalWidth > 0")
            before = page.evaluate(FILTER)
            assert "blur" in before and "grayscale" in before, before
            assert page.locator("#exposure-count").inner_text() == "0"
            page.screenshot(path=str(out / "case_view.png"), full_page=True)
            item_a = seeded["a"].items[0].id
            # before a reveal the browser holds only a server-blurred greyscale preview
            assert page.evaluate("() => document.querySelector('.media-frame img.media').src").endswith(
                f"/console/items/{item_a}/preview")
            preview = context.request.get(base + f"/console/items/{item_a}/preview")
            assert preview.status == 200 and preview.headers["content-type"] == "image/jpeg"
            assert Image.open(io.BytesIO(preview.body())).mode == "L"
            assert context.request.get(base + f"/console/items/{item_a}/media").status == 403  # reveal first
            assert httpx.get(base + f"/console/items/{item_a}/media").status_code == 401

            page.focus(".media-frame")
            page.keyboard.press("r")
            page.wait_for_function(f"() => ({FILTER})() === 'none'", timeout=5000)
            assert page.locator("#exposure-count").inner_text() == "1"
            assert page.evaluate("() => document.querySelector('.media-frame img.media').src").endswith(
                f"/console/items/{item_a}/media")
            page.wait_for_function("() => document.querySelector('.media-frame img.media').naturalWidth > 0")
            media = context.request.get(base + f"/console/items/{item_a}/media")  # granted after the reveal
            assert media.status == 200 and "no-store" in media.headers["cache-control"]
            assert media.headers["content-type"] == "image/png"
            page.screenshot(path=str(out / "case_view_revealed.png"), full_page=True)
            with db.session() as s:
                reveals = list(s.scalars(select(Reveal)))
            assert [(r.reviewer, r.item_id) for r in reveals] == [("alice", seeded["a"].items[0].id)]
            logged = [e for e in AuditLog(db).list(limit=1000) if e.event_type == "reveal"]
            assert [(e.actor, e.data["item_id"]) for e in logged] == [("alice", seeded["a"].items[0].id)]
            # the reveal fades back by itself
            page.wait_for_function(f"() => ({FILTER})().includes('blur')", timeout=8000)

            # confirm into a normal bank → the next match finds it. Nothing matched this case, so
            # no bank is preselected: `c` asks for one first
            assert _match(world, pdq_a) == []
            assert page.input_value("#confirm-bank") == ""
            page.keyboard.press("c")
            assert page.locator("#confirm-need-bank").is_visible()
            assert not page.locator("#confirm-step").is_visible()
            page.select_option("#confirm-bank", "known")
            page.evaluate("() => document.activeElement.blur()")
            page.keyboard.press("c")  # opens the confirm step, showing the bank; nothing is sent yet
            assert page.locator("#confirm-step").is_visible()
            assert page.locator("#confirm-step-bank").inner_text() == "known"
            assert "/console/cases/" in page.url and _match(world, pdq_a) == []
            page.screenshot(path=str(out / "confirm_step.png"), full_page=True)
            page.keyboard.press("Escape")  # cancel
            assert not page.locator("#confirm-step").is_visible()
            page.click("#confirm")  # the button opens the same step
            assert page.locator("#confirm-step").is_visible()
            page.keyboard.press("Enter")  # and Enter commits
            page.wait_for_url("**/console/**done=confirmed*")
            hits = _match(world, pdq_a)
            assert [(h["bank"], h["distance"]) for h in hits] == [("known", 0)]

            # undo (u) within the window: the entries are withdrawn and the case reopens
            assert page.locator("#undo-form").is_visible()
            assert f"case #{seeded['a'].id} into bank known" in page.locator("#undo-form").inner_text()
            page.screenshot(path=str(out / "queue_undo.png"), full_page=True)
            page.keyboard.press("u")
            page.wait_for_url(f"**/console/cases/{seeded['a'].id}?done=undone")
            assert _match(world, pdq_a) == []
            assert page.locator("#case-status").inner_text() == "claimed"
            # confirm again, with the keyboard only: c, then c again
            page.select_option("#confirm-bank", "known")
            page.evaluate("() => document.activeElement.blur()")
            page.keyboard.press("c")
            assert page.locator("#confirm-step").is_visible()
            page.keyboard.press("c")
            page.wait_for_url("**/console/**done=confirmed*")
            assert [h["bank"] for h in _match(world, pdq_a)] == ["known"]
            kinds = [e.event_type for e in AuditLog(db).list(limit=1000) if e.event_type.startswith("decision")]
            assert kinds == ["decision", "decision.undone", "decision"]

            # four-eyes: alice's confirm into the shared bank waits, and matches nothing yet
            page.goto(base + f"/console/cases/{seeded['b'].id}")
            page.select_option("#confirm-bank", "partners")
            page.fill("#confirm-note", "same picture as the report")
            page.click("#confirm")
            assert "second reviewer" in page.locator("#confirm-step").inner_text()
            page.click("#confirm-commit")
            page.wait_for_url("**/console/**done=pending*")
            assert _match(world, pdq_b) == []
            assert page.locator("#approvals").count() == 0  # not offered to the first reviewer
            page.goto(base + f"/console/cases/{seeded['b'].id}")
            assert page.locator("#approve").count() == 0
            shortcuts = page.locator("#shortcuts").inner_text()
            assert "confirm" not in shortcuts and "dismiss" not in shortcuts and "escalate" not in shortcuts
            page.keyboard.press("c")  # does nothing on a case waiting for a second review
            assert "/console/cases/" in page.url and page.locator("#confirm-step").count() == 0

            # keyboard shortcut: e escalates case C
            page.goto(base + f"/console/cases/{seeded['c'].id}")
            page.keyboard.press("e")
            page.wait_for_url("**/console/**done=escalated*")
            _logout(page)

            # bob approves → applied, and the match finds it
            _login(page, base, "bob")
            assert "same picture as the report" in page.locator("#approvals").inner_text()
            page.goto(base + f"/console/cases/{seeded['b'].id}")
            assert "same picture as the report" in page.locator("#first-reviewer-note").inner_text()
            page.screenshot(path=str(out / "second_review.png"), full_page=True)
            page.goto(base + "/console/queue")
            approve = page.locator("#approvals tr[data-decision] button.approve")
            assert approve.count() == 1
            approve.click()
            page.wait_for_url("**/console/queue?done=approved")
            assert [h["bank"] for h in _match(world, pdq_b)] == ["partners"]
            with db.session() as s:
                d = s.scalar(select(Decision).where(Decision.case_id == seeded["b"].id))
            assert (d.reviewer, d.second_reviewer, d.status) == ("alice", "bob", "applied")

            # an auditor sees the audit trail, not the queue
            _logout(page)
            page.goto(base + "/console/login")
            page.fill("#username", "audrey")
            page.fill("#password", PASSWORD)
            page.click("#login-submit")
            page.wait_for_url("**/console/audit")
            kinds = set(page.locator("#audit tbody tr").evaluate_all("rs => rs.map(r => r.dataset.event)"))
            assert {"login.ok", "login.failed", "reveal", "decision", "decision.approved"} <= kinds
            assert context.request.get(base + "/console/queue").status == 403
            page.goto(base + "/console/banks/known?status=active")  # was a 500 for every bank
            assert page.locator("#entries tbody tr").count() >= 1
            page.screenshot(path=str(out / "bank.png"), full_page=True)

            # a phone-sized window: the case view, its confirm step and the queue stay usable
            phone = browser.new_context(viewport={"width": 390, "height": 844}, device_scale_factor=1)
            mobile = phone.new_page()
            try:
                d = world["case_service"].submit(ItemInput(media=encode(scene(seed=24), "PNG")), uploader_id="acct-d")
                _login(mobile, base, "bob")
                mobile.goto(base + f"/console/cases/{d.id}")
                mobile.wait_for_function("() => document.querySelector('.media-frame img.media').naturalWidth > 0")
                mobile.screenshot(path=str(out / "phone_case.png"), full_page=True)
                # the decide panel scrolls away on a phone (sticky, its stacked form covered half
                # the screen over the items); on a desktop it stays at the top
                assert mobile.evaluate("() => getComputedStyle(document.querySelector('.decide')).position") == "static"
                mobile.select_option("#confirm-bank", "known")
                mobile.click("#confirm")
                assert mobile.locator("#confirm-step").is_visible()
                assert mobile.evaluate("() => document.documentElement.scrollWidth") <= 390
                mobile.screenshot(path=str(out / "phone_confirm_step.png"), full_page=True)
                mobile.keyboard.press("Enter")
                mobile.wait_for_url("**/console/**done=confirmed*")
                assert mobile.locator("#undo-form").is_visible()
                mobile.screenshot(path=str(out / "phone_queue_undo.png"), full_page=True)
            finally:
                phone.close()
        finally:
            context.close()
            browser.close()
    print(f"\nconsole screenshots: {out}")
    assert (out / "queue.png").stat().st_size > 0 and (out / "case_view.png").stat().st_size > 0
