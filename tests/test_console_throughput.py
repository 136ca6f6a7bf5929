"""Issue 19: a moderator clears a 50-case queue with the keyboard only (Debian's Chromium driven
by Playwright against a real server). Reports decisions per minute and key presses per decision
for the new flow (auto-next, ``d`` / ``c c``) and for the console's old flow replayed on the same
server (back to the queue after each decision, Tab to the first case, Enter), and saves
screenshots of the queue, a multi-item case and the audit view at 1366×768.

Set ``CONSENTRY_DOCS_SHOTS=docs/img`` to write the screenshots used by docs/console.md. Only
benign pictures (landscapes drawn by ``imagegen``)."""

from __future__ import annotations

import os
from pathlib import Path

from a11y import axe_violations, describe
from conftest import CHROMIUM, CHROMIUM_ARGS, needs_chromium
from console_queue_driver import clear_queue, login, serve

pytestmark = needs_chromium
VIEW = {"width": 1366, "height": 768}


def _shot(page, path: Path) -> None:
    """A screenshot, kept small (64-colour PNG) for the docs, after axe found nothing serious."""
    from PIL import Image

    bad = axe_violations(page)
    assert not bad, describe(bad)
    page.screenshot(path=str(path))
    Image.open(path).convert("RGB").quantize(64).save(path, optimize=True)


def test_keyboard_only_reviewer_clears_a_50_case_queue(tmp_path):
    from playwright.sync_api import sync_playwright

    shots = Path(os.environ.get("CONSENTRY_DOCS_SHOTS") or tmp_path / "shots")
    shots.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            with serve(tmp_path / "new", n_cases=50) as w:
                ctx = browser.new_context(viewport=VIEW, device_scale_factor=1)
                page = ctx.new_page()
                login(page, w["base"], "mo")
                page.goto(w["base"] + "/console/queue")
                _shot(page, shots / "console-queue.png")
                multi = w["cases"][0]  # three items from one uploader
                page.goto(w["base"] + f"/console/cases/{multi.id}")
                page.wait_for_function("() => [...document.querySelectorAll('.media-frame img.media')]"
                                       ".every(i => i.complete && i.naturalWidth > 0)")
                assert page.locator(".items-grid .item").count() == 3
                # the whole 3-item case fits one 1366×768 screen height-wise (was 3,127 px)
                assert page.evaluate("() => document.getElementById('items').getBoundingClientRect().height") < 700
                _shot(page, shots / "console-case.png")
                page.click("#release")
                new = clear_queue(page, w["base"])
                assert new.decisions == 50 and page.locator("#queue-empty").count() == 1
                assert new.presses_per_decision <= 2
                ctx.close()
                auditor = browser.new_context(viewport=VIEW, device_scale_factor=1).new_page()
                login(auditor, w["base"], "au")
                auditor.goto(w["base"] + "/console/audit")
                assert auditor.locator("#chain").inner_text().startswith("Chain intact")
                _shot(auditor, shots / "console-audit.png")
            with serve(tmp_path / "old", n_cases=12) as w:
                page = browser.new_context(viewport=VIEW, device_scale_factor=1).new_page()
                login(page, w["base"], "mo")
                old = clear_queue(page, w["base"], old_flow=True)
                assert old.decisions == 12
        finally:
            browser.close()
    print(f"\nkeyboard-only queue: new flow {new.decisions} decisions, {new.per_minute:.1f}/min, "
          f"{new.presses_per_decision:.2f} presses/decision ({new.kinds}); old flow {old.decisions} decisions, "
          f"{old.per_minute:.1f}/min, {old.presses_per_decision:.2f} presses/decision; "
          f"speed-up {new.per_minute / old.per_minute:.2f}x; screenshots in {shots}")
    assert old.presses_per_decision > new.presses_per_decision + 5
