"""A 50-case review queue served by a real uvicorn server, and a keyboard-only reviewer that clears it.

Shared by the throughput test (``test_console_throughput.py``) and the docs screenshots. Only
benign pictures (landscapes drawn by ``imagegen``).
"""

from __future__ import annotations

import base64
import os
import socket
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field

import httpx

from consentry.banks.service import BankService
from consentry.config import Settings
from consentry.db import Database
from consentry.review.cases import CaseService, ItemInput
from consentry.review.users import UserService
from consentry.review.vault import Vault
from imagegen import encode, scene

PASSWORD = "a long benign passphrase"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def seed_queue(db: Database, settings: Settings, n_cases: int = 50, multi_every: int = 10) -> list:
    """``n_cases`` cases, one per uploader; every ``multi_every``-th holds three items. Each item
    matched bank ``known`` (so confirm has a default bank)."""
    banks = BankService(db)
    banks.create_bank("known", "ncii", description="Reported by people in the pictures")
    entry, _ = banks.add_entry("known", "md5", "0" * 32, added_by="seed", source="StopNCII test list",
                               tags=["reported"], category="ncii")
    match = {"bank": "known", "bank_kind": "ncii", "signal_type": "pdq", "distance": 12, "entry_id": entry.id}
    cases = CaseService(db, banks, vault=Vault.from_settings(settings, db))
    out = []
    for i in range(n_cases):
        k = 3 if multi_every and i % multi_every == 0 else 1
        for j in range(k):
            c = cases.submit(ItemInput(media=encode(scene(seed=1000 + i * 7 + j), "PNG"), matches=[dict(match)]),
                             uploader_id=f"acct-{i:03d}", priority=50 + (i % 3) * 10, queue="uploads")
        out.append(c)
    return out


@contextmanager
def serve(tmp_path, n_cases: int = 50, budget: int = 500):
    import uvicorn

    from consentry.web.app import create_app

    settings = Settings(home=tmp_path, index_refresh_seconds=0.5).with_(
        vault_key=base64.b64encode(os.urandom(32)).decode(), exposure_budget=budget)
    url = f"sqlite:///{tmp_path / 'consentry.db'}"
    db = Database(url)
    db.upgrade()
    users = UserService(db)
    users.create("mo", PASSWORD, "moderator")
    users.create("cu", PASSWORD, "curator")
    users.create("au", PASSWORD, "auditor")
    seeded = seed_queue(db, settings, n_cases)
    server_db = Database(url)
    app = create_app(settings, server_db, background=True)
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            if httpx.get(base + "/readyz", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    try:
        yield {"base": base, "db": db, "cases": seeded, "settings": settings}
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        server_db.dispose()
        db.dispose()


def login(page, base: str, username: str) -> None:
    page.goto(base + "/console/login")
    page.fill("#username", username)
    page.fill("#password", PASSWORD)
    page.click("#login-submit")
    page.wait_for_url("**/console/**")


@dataclass
class Run:
    decisions: int = 0
    presses: int = 0
    seconds: float = 0.0
    kinds: dict = field(default_factory=dict)

    @property
    def per_minute(self) -> float:
        return 60.0 * self.decisions / self.seconds if self.seconds else 0.0

    @property
    def presses_per_decision(self) -> float:
        return self.presses / self.decisions if self.decisions else 0.0


def _on_case(page) -> bool:
    return "/console/cases/" in page.url


#: Tab stops on the old queue page before its first case link (skip link, Queue, Banks, Log out,
#: the Undo button shown after every decision): read from the templates before issue 19.
OLD_TABS_TO_FIRST_CASE = 6


def clear_queue(page, base: str, limit: int = 200, *, old_flow: bool = False) -> Run:
    """Clear the queue with the keyboard only, counting every key press. Which decision a case
    gets is read from the page (the uploader number: every fourth confirmed, the rest dismissed).

    New flow: ``Enter`` on the queue's focused "Review next case" link, then per case ``d`` (one
    press) or ``c`` ``c`` (confirm step, then commit); the next case opens by itself.

    ``old_flow``: the console before issue 19, replayed on this server: every decision goes back
    to the queue (``advance=q``), where the reviewer Tabs past the page header to the first case
    link and presses Enter (``OLD_TABS_TO_FIRST_CASE`` + 1 presses). No deliberate waits: the
    clock runs only while pages load and keys are pressed."""
    run = Run()
    page.goto(base + "/console/queue")
    start = time.monotonic()

    def press(key: str) -> None:
        page.keyboard.press(key)
        run.presses += 1

    while run.decisions < limit:
        page.wait_for_load_state("domcontentloaded")
        if not _on_case(page):
            first = page.locator("#cases a[href^='/console/cases/']")
            if first.count() == 0:
                break
            if old_flow:
                page.evaluate("() => document.activeElement && document.activeElement.blur()")
                for _ in range(OLD_TABS_TO_FIRST_CASE):
                    press("Tab")
                first.first.focus()  # where those Tabs led on the old page
                with page.expect_navigation():
                    press("Enter")
                continue
            focused = page.evaluate("() => (document.activeElement && document.activeElement.getAttribute('href')) || ''")
            tabs = 0
            while not focused.startswith("/console/cases/"):
                press("Tab")
                tabs += 1
                assert tabs < 60, "no case link reachable by Tab"
                focused = page.evaluate("() => (document.activeElement && document.activeElement.getAttribute('href')) || ''")
            with page.expect_navigation():
                press("Enter")
            continue
        if old_flow:
            page.evaluate("() => document.querySelectorAll('input.advance').forEach(n => n.setAttribute('data-default', 'q'))")
        uploader = page.locator("[data-uploader]").first.get_attribute("data-uploader")
        n = int(uploader.rsplit("-", 1)[1])
        kind = "confirm" if n % 4 == 0 else "dismiss"
        before = page.url
        with page.expect_navigation():
            if kind == "confirm":
                press("c")
                page.locator("#confirm-step").wait_for(state="visible")
                press("c")
            else:
                press("d")
        assert page.url != before
        run.decisions += 1
        run.kinds[kind] = run.kinds.get(kind, 0) + 1
    run.seconds = time.monotonic() - start
    return run
