"""Issue 18: the public pages (``/``, ``/submit``, ``/case``) in the visitors' languages, with
who runs the instance, what a hash is, the steps, what happens next, support by country, and
the fixes seen in a browser; axe-core finds no serious or critical problem on any of them.

The catalogs are checked statically (complete, same placeholders, every text in templates and
scripts goes through them); the pages are driven in Debian's chromium against the in-process
app at ``http://localhost`` (a secure context, so the clipboard works), at 390 px, in every
language. Screenshots go to ``$CONSENTRY_SCREENSHOT_DIR`` (else the test's tmp dir).
"""

from __future__ import annotations

import json
import os
import re
import secrets
from html.parser import HTMLParser
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from a11y import axe_violations, describe
from conftest import needs_chromium
from consentry.config import Settings
from consentry.i18n import LANGUAGES, Translator, catalog, negotiate, parse_accept_language, placeholders
from consentry.i18n.instance import PACKAGED_SUPPORT
from consentry.web.app import create_app
from imagegen import scene
from test_victim_page import browser  # noqa: F401  (the module's chromium, shared)

WEB = Path(__file__).resolve().parents[1] / "src" / "consentry" / "web"
TEMPLATES = sorted((WEB / "templates" / "victim").glob("*.html")) + sorted((WEB / "templates" / "landing").glob("*.html"))
SCRIPTS = [WEB / "static" / "victim" / n for n in ("submit.js", "case.js", "i18n.js")]
PAGES = ("/", "/submit", "/case")
PIN = "lighthouse-teapot-7"
ORIGIN = "http://localhost"


def _make_app(home: Path):
    # many cases from one test "network": the per-IP limits are tested elsewhere
    return create_app(Settings(home=home, victim_submissions_per_hour=10_000, victim_lookups_per_minute=10_000),
                      background=False)


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    app = _make_app(tmp_path_factory.mktemp("i18n"))
    with TestClient(app) as c:
        yield c
    app.state.consentry.match_log.close()


# ---------------------------------------------------------------- negotiation
def test_language_comes_from_lang_parameter_then_accept_language():
    assert parse_accept_language("fr-CH, fr;q=0.9, es;q=0.8, *;q=0.5") == ["fr", "fr", "es"]
    assert negotiate("ko-KR,ko;q=0.9,en-US;q=0.8") == "ko"
    assert negotiate("fr-FR, es;q=0.7, en;q=0.5") == "es"  # the first language with a catalog
    assert negotiate("en;q=0.1, ar;q=0.9") == "ar"  # by weight, not by order
    assert negotiate("es;q=0, ko;q=0.2") == "ko"  # q=0 means "not this one"
    assert negotiate("fr, de") == "en" and negotiate(None) == "en" and negotiate("garbage;;,,") == "en"
    assert negotiate("ko", "es-MX") == "es"  # ?lang= wins
    assert negotiate("ko", "xx") == "ko"  # an unknown ?lang= is ignored


# ---------------------------------------------------------------- catalogs
SAME_OK = {"submit.pin", "case.pin", "js.list_sep"}  # the same in some languages ("PIN", ", ")


def test_every_catalog_is_complete_and_keeps_the_placeholders():
    en = catalog("en")
    assert len(en) > 150
    for code, lang in LANGUAGES.items():
        cat = catalog(code)
        assert set(cat) == set(en), (code, sorted(set(en) ^ set(cat)))
        for key, src in en.items():
            got = cat[key]
            if isinstance(src, str):
                assert isinstance(got, str) and got.strip(), (code, key)
                assert placeholders(got) == placeholders(src), (code, key)
                if code != "en" and key not in SAME_OK:
                    assert got != src, f"{code}: {key} is not translated"
            else:
                assert isinstance(got, dict), (code, key)
                assert set(lang.plural_forms) <= set(got) and "other" in got, (code, key, sorted(got))
                allowed = set().union(*(placeholders(v) for v in src.values()))
                for form, text in got.items():
                    assert text.strip() and placeholders(text) <= allowed, (code, key, form)
                assert "{count}" in got["other"] or code == "ar", (code, key)


def _template_ids() -> set[str]:
    text = "\n".join(p.read_text() for p in TEMPLATES)
    return set(re.findall(r"""_\(\s*'([a-z0-9_.]+)'""", text))


def _script_ids() -> set[str]:
    text = "\n".join(p.read_text() for p in SCRIPTS)
    return set(re.findall(r"""["'](js\.[a-z0-9_]+)["']""", text))


def test_every_message_id_used_exists_and_every_message_is_used():
    en = set(catalog("en"))
    used = _template_ids() | _script_ids() | {"submit.page_title", "case.page_title", "common.not_found",
                                              "common.no_victim_service"}  # used by victim.py
    assert used - en == set()
    assert en - used == set(), "unused messages (remove them or use them)"
    assert all(k.startswith("js.") for k in _script_ids())


class _Text(HTMLParser):
    """Visible text and the attributes a person reads or hears (alt, placeholder, aria-label, title)."""

    def __init__(self):
        super().__init__()
        self.found: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag, attrs):
        if tag in ("script", "style"):
            self._skip += 1
        for name, value in attrs:
            if name in ("alt", "placeholder", "aria-label", "title") and value and value.strip():
                self.found.append(value.strip())

    def handle_endtag(self, tag):
        if tag in ("script", "style"):
            self._skip -= 1

    def handle_data(self, data):
        if not self._skip and data.strip():
            self.found.append(data.strip())


#: text that is not a message: the product name, the hash names, the case-number pattern, step numbers
NOT_MESSAGES = {"Consentry", "PDQ", "MD5", "XXXX-XXXX-XXXX-XXXX-XXXX", "1", "2", "3", "4"}


def test_templates_hold_no_text_outside_the_catalog():
    for path in TEMPLATES:
        raw = re.sub(r"\{\{.*?\}\}|\{%.*?%\}|\{#.*?#\}", " ", path.read_text(), flags=re.S)
        parser = _Text()
        parser.feed(raw)
        left = [t for t in parser.found
                if not all(w in NOT_MESSAGES or not re.search(r"[^\W\d_]", w) for w in t.replace(",", " ").split())]
        assert left == [], f"{path.name}: text outside the catalog: {left}"


#: string literals in the scripts that are not prose: selectors, ids, JSON/HTTP words, data values
_TECHNICAL = re.compile(r"""^(?:[#.\w\[\]=:\-\s*>]*|Content-Type|application/json|no-referrer|no-store|omit|
                            POST|PDQ\s|vPDQ\s×\s|MD5\s|\\n|use\sstrict|2d|from-image|none)$""", re.X)


def test_scripts_show_no_text_of_their_own():
    for path in SCRIPTS:
        src = re.sub(r"/\*.*?\*/", "", path.read_text(), flags=re.S)
        src = re.sub(r"^\s*//.*$|\s//\s.*$", "", src, flags=re.M)  # comments are not shown
        literals = re.findall(r'"((?:[^"\\]|\\.)*)"', src) + re.findall(r"'((?:[^'\\]|\\.)*)'", src)
        prose = [s for s in literals if re.search(r"[A-Za-z]{2,}\s+[A-Za-z]{2,}", s) and not _TECHNICAL.match(s)]
        assert prose == [], f"{path.name}: text outside the catalog: {prose}"
        assert not re.search(r"textContent\s*=\s*[\"']\w", src), path.name


# ---------------------------------------------------------------- rendering
@pytest.mark.parametrize("code", sorted(LANGUAGES))
def test_pages_set_lang_dir_switcher_and_embed_the_scripts_messages(client, code):
    lang = LANGUAGES[code]
    for path in PAGES:
        r = client.get(f"{path}?lang={code}", headers={"Accept-Language": "en"})
        assert r.status_code == 200, path
        assert f'<html lang="{code}" dir="{lang.dir}">' in r.text, path
        assert r.headers["content-language"] == code and "Accept-Language" in r.headers["vary"]
        for other in LANGUAGES.values():  # the switcher names every language in itself
            assert f'href="{path}?lang={other.code}" lang="{other.code}" hreflang="{other.code}"' in r.text
            assert f">{other.name}</a>" in r.text
        assert 'aria-current="true">' + lang.name in r.text
        if path != "/":
            m = re.search(r'<script type="application/json" id="messages">(.*?)</script>', r.text, re.S)
            assert json.loads(m.group(1)) == Translator(code).js()
            # internal links keep the chosen language (there is no cookie to remember it)
            assert f'href="/case?lang={code}"' in r.text and f'href="/submit?lang={code}"' in r.text
    assert (dict(client.get("/submit", headers={"Accept-Language": "ko-KR,ko;q=0.9"}).headers)["content-language"]
            == "ko")


def test_accept_language_without_lang_keeps_plain_links(client):
    r = client.get("/case", headers={"Accept-Language": "es-ES,es;q=0.9"})
    assert '<html lang="es" dir="ltr">' in r.text and "Consultar el estado" in r.text
    assert 'href="/submit"' in r.text and "/submit?lang=" not in r.text  # only the switcher names a language


def test_pages_load_nothing_from_other_sites(client):
    for code in LANGUAGES:
        for path in PAGES:
            r = client.get(f"{path}?lang={code}")
            assert "default-src 'none'" in r.headers["content-security-policy"]
            loads = re.findall(r"""<(?:script|img|link|iframe|video|source)\b[^>]*?(?:src|href)=["']([^"']+)""", r.text)
            assert loads and all(u.startswith("/static/") for u in loads), loads
            for u in set(loads):
                assert client.get(u).status_code == 200, u


# ---------------------------------------------------------------- operator and support resources
def test_operator_text_partners_and_privacy_are_shown_in_the_visitors_language(tmp_path):
    (tmp_path / "operator.yaml").write_text(
        "name: Harbour Helpline\nurl: https://helpline.example.org/\ncontact: care@helpline.example.org\n"
        "about:\n  en: We help adults in the harbour towns.\n  es: Ayudamos a personas adultas de los puertos.\n"
        "privacy:\n  en: We delete logs after 7 days.\n  ko: 기록은 7일 뒤 삭제합니다.\n"
        "partners:\n  - name: Teapot Social\n    url: https://teapot.example.com/\n  - Lighthouse Video\n"
        "  - name: Bad Link\n    url: javascript:alert(1)\n")
    app = _make_app(tmp_path)
    with TestClient(app) as c:
        es = c.get("/submit?lang=es").text
        assert "Harbour Helpline" in es and "Ayudamos a personas adultas" in es
        assert "We delete logs after 7 days." in es  # no Spanish privacy text: English, not nothing
        assert 'href="https://teapot.example.com/"' in es and "Lighthouse Video" in es
        assert "javascript:" not in es and "Bad Link" in es
        assert "기록은 7일 뒤 삭제합니다." in c.get("/case?lang=ko").text
        assert "Harbour Helpline" in c.get("/").text
        (tmp_path / "operator.yaml").write_text("name: [unclosed\n")  # broken: logged, page still works
        r = c.get("/submit")
        assert r.status_code == 200 and "has not published its details" in r.text
    app.state.consentry.match_log.close()


def test_support_resources_follow_language_or_chosen_country(client):
    ko = client.get("/submit?lang=ko").text.split('id="support"', 1)[1].split("</section>", 1)[0]
    assert "디지털성범죄피해자지원센터" in ko and "1366" in ko and "https://d4u.stop.or.kr/" in ko
    es = client.get("/submit?lang=es").text.split('id="support"', 1)[1].split("</section>", 1)[0]
    assert ">016<" in es and ">017<" in es and "España" in es and "Revenge Porn" not in es.split("<details", 1)[0]
    en = client.get("/case", headers={"Accept-Language": "en-GB"}).text
    assert "0345 6000 459" in en and "cybercivilrights.org" in en
    chosen = client.get("/case?lang=es&country=GB").text.split('id="support"', 1)[1].split("<details", 1)[0]
    assert "Revenge Porn Helpline" in chosen and ">016<" not in chosen
    assert 'href="/case?country=KR&amp;lang=es#support"' in client.get("/case?lang=es").text
    ar = client.get("/case?lang=ar").text  # no checked organisation for Arabic: say so, offer countries
    assert "ليست لدينا بعد قائمة موثّقة" in ar and "كوريا الجنوبية" in ar


def test_packaged_support_resources_name_their_source():
    import yaml

    data = yaml.safe_load(PACKAGED_SUPPORT.read_text())
    for code, country in data["countries"].items():
        for r in country["resources"]:
            assert r["source"].startswith("https://") and str(r["checked"]), (code, r["name"])
            assert r.get("url", "https://").startswith("https://")
            assert set(r["name"]) >= set(LANGUAGES), (code, r["name"])


def test_operator_file_can_replace_support_resources(tmp_path):
    (tmp_path / "support-resources.yaml").write_text(
        "default_countries: {en: [NZ]}\ncountries:\n  NZ:\n    name: New Zealand\n    resources:\n"
        "      - name: Teapot Trust Line\n        phone: '0800 000 000'\n        source: https://example.org/\n")
    app = _make_app(tmp_path)
    with TestClient(app) as c:
        text = c.get("/submit").text
        assert "Teapot Trust Line" in text and "0800 000 000" in text and "Revenge Porn" not in text
    app.state.consentry.match_log.close()


# ---------------------------------------------------------------- in the browser
@pytest.fixture(scope="module")
def shots(tmp_path_factory):
    d = Path(os.environ.get("CONSENTRY_SCREENSHOT_DIR") or tmp_path_factory.mktemp("shots"))
    d.mkdir(parents=True, exist_ok=True)
    return d


def _phone(browser, client, lang: str = "en", **kw):
    """A 390 px phone whose requests to http://localhost are answered by the in-process app."""
    ctx = browser.new_context(viewport={"width": 390, "height": 844}, device_scale_factor=1, is_mobile=True,
                              has_touch=True, locale=lang, **kw)

    def serve(route):
        req = route.request
        path = req.url.split(ORIGIN, 1)[1]
        r = client.request(req.method, path, content=req.post_data_buffer,
                           headers={k: v for k, v in req.headers.items() if k.lower() in ("content-type", "accept-language")})
        route.fulfill(status=r.status_code, headers=dict(r.headers), body=r.content)

    ctx.route(ORIGIN + "/**", serve)
    return ctx


def _case(client, n_items: int = 2, md5s: list[str] | None = None, pdqs: list[str] | None = None) -> str:
    md5s = md5s or [secrets.token_hex(16) for _ in range(n_items)]
    pdqs = pdqs or [secrets.token_hex(32) for _ in range(n_items)]
    items = [{"kind": "photo", "md5": m, "pdq": p, "pdq_quality": 90} for m, p in zip(md5s, pdqs)]
    r = client.post("/v1/victim/cases", json={"version": 1, "items": items, "pin": PIN, "depicted_adult": True})
    assert r.status_code == 201, r.text
    return r.json()["case_number"]


def _fits(page) -> None:
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"{page.url}: {width} px wide"


def _axe_clean(page) -> None:
    bad = axe_violations(page)
    assert not bad, f"{page.url}\n{describe(bad)}"


@needs_chromium
@pytest.mark.slow
@pytest.mark.parametrize("code", sorted(LANGUAGES))
def test_every_page_fits_a_phone_and_passes_axe_in_every_language(browser, client, shots, code):
    ctx = _phone(browser, client, code)
    page = ctx.new_page()
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        for path in PAGES:
            page.goto(f"{ORIGIN}{path}?lang={code}")
            assert page.evaluate("[document.documentElement.lang, document.documentElement.dir]") == \
                [code, LANGUAGES[code].dir]
            _fits(page)
            _axe_clean(page)
            page.screenshot(path=str(shots / f"{code}-{path.strip('/') or 'landing'}-390.png"), full_page=True)
        # /submit: the file chooser is within the first screen on a phone, and it speaks the
        # page's language (the browser's own button would say "Choose Files" in the browser's)
        page.goto(f"{ORIGIN}/submit?lang={code}")
        box = page.locator(".file-button").bounding_box()
        assert box and box["y"] + box["height"] <= 844, box
        assert page.text_content(".file-button") == catalog(code)["submit.choose_files"]
        assert page.text_content("#files-chosen").strip() == catalog(code)["submit.no_files"]
        from imagegen import encode, scene

        page.set_input_files("#files", [{"name": f"p{i}.png", "mimeType": "image/png",
                                         "buffer": encode(scene(seed=80 + i), "PNG")} for i in range(2)])
        assert page.text_content("#files-chosen") == {"en": "2 files chosen", "es": "2 archivos elegidos",
                                                      "ko": "파일 2개를 골랐습니다", "ar": "اخترت ملفين"}[code]
        page.screenshot(path=str(shots / f"{code}-submit-chosen-390.png"))
        page.focus("#files")  # hidden from sight, not from the keyboard (display: none could not take focus)
        assert page.evaluate("document.activeElement.id") == "files"
        # /case after "Check status" (was 459 px wide)
        number = _case(client)
        page.goto(f"{ORIGIN}/case?lang={code}")
        page.fill("#case", number)
        page.fill("#case-pin", PIN)
        page.click("#check")
        page.wait_for_selector("#case-status:not([hidden])")
        _fits(page)
        _axe_clean(page)
        page.screenshot(path=str(shots / f"{code}-case-status-390.png"), full_page=True)
        assert page.text_content("#st-items") == {"en": "2 pictures", "es": "2 imágenes", "ko": "사진 2개",
                                                  "ar": "صورتان"}[code]
        if code == "ar":  # right to left: the text starts at the right edge
            assert page.evaluate("getComputedStyle(document.querySelector('h1')).direction") == "rtl"
        assert errors == []
    finally:
        ctx.close()


def _write(tmp: Path) -> dict[str, Path]:
    files = {"good": tmp / "harbour.png", "plain": tmp / "plain.png", "text": tmp / "notes.jpg",
             "cut": tmp / "cut.jpg"}
    scene(320, 240, seed=11).save(files["good"])
    Image.new("RGB", (200, 150), (90, 140, 200)).save(files["plain"])
    files["text"].write_text("a shopping list: teapot, lighthouse postcard\n")
    whole = tmp / "whole.jpg"
    scene(400, 300, seed=12).save(whole, quality=90)
    data = whole.read_bytes()
    files["cut"].write_bytes(data[: len(data) * 2 // 3])  # a JPEG whose download stopped part-way
    return files


@needs_chromium
@pytest.mark.slow
def test_submit_flow_errors_counts_blur_and_why_send_is_off(browser, client, tmp_path):
    files = _write(tmp_path)
    ctx = _phone(browser, client, "en")
    page = ctx.new_page()
    try:
        page.goto(ORIGIN + "/submit")
        assert page.text_content("#send-why") == "To send, first choose at least one picture or video."
        assert page.get_attribute("#steps li[data-step=choose]", "aria-current") == "step"
        page.set_input_files("#files", [str(files[k]) for k in ("good", "text", "cut", "plain")])
        page.wait_for_selector("body[data-hashing=done]", state="attached", timeout=60_000)
        rows = page.eval_on_selector_all("#items li[data-index]", "rs => rs.map(r => ({error: r.dataset.error || null,"
                                         " kind: r.dataset.kind || null, title: r.querySelector('.item-title').textContent}))")
        assert rows[0] == {"error": None, "kind": "photo", "title": "Picture 1"}
        assert rows[1]["error"].startswith("this is not a picture or video") and rows[1]["kind"] is None
        assert rows[2]["error"].startswith("the file looks damaged or incomplete") and rows[2]["kind"] is None
        assert rows[3]["error"] is None and rows[3]["kind"] == "photo"
        assert page.is_visible("#items li[data-index='1'] .item-status")
        assert "Left out:" in page.text_content("#items li[data-index='2']")
        progress = page.text_content("#hash-progress")
        assert progress.startswith("2 pictures or videos are ready.") and "2 files were left out" in progress
        preview = json.loads(page.text_content("#payload-preview"))
        assert len(preview["items"]) == 2
        # the person's own pictures are blurred until they choose to see them
        blur = "getComputedStyle(document.querySelector('#items img')).filter"
        assert "blur" in page.evaluate(blur)
        page.click("#reveal")
        assert page.evaluate(blur) == "none" and page.get_attribute("#reveal", "aria-pressed") == "true"
        page.click("#reveal")
        assert "blur" in page.evaluate(blur)
        # why Send is off, step by step; a stale PIN error goes when the age answer changes
        assert page.text_content("#send-why") == "To send, answer the age question."
        assert page.get_attribute("#steps li[data-step=check]", "aria-current") == "step"
        page.check("#age-adult")
        assert page.is_enabled("#send") and page.get_attribute("#steps li[data-step=send]", "aria-current") == "step"
        page.fill("#pin", "ab")
        page.click("#send")
        assert "at least" in page.text_content("#form-error")
        page.check("#age-unsure")
        assert page.text_content("#form-error") == ""
        assert page.is_disabled("#send") and "only takes images of adults" in page.text_content("#send-why")
        assert "That is why sending is switched off here." in page.text_content("#minor-help")
        assert page.is_visible("#minor-help a")
        _axe_clean(page)
    finally:
        ctx.close()


@needs_chromium
@pytest.mark.slow
def test_keyboard_only_submit_then_copy_and_print_the_case_number(browser, client, tmp_path, shots):
    files = _write(tmp_path)
    ctx = _phone(browser, client, "ko")
    ctx.grant_permissions(["clipboard-read", "clipboard-write"], origin=ORIGIN)
    page = ctx.new_page()
    try:
        page.goto(ORIGIN + "/submit")
        assert page.evaluate("document.documentElement.lang") == "ko"  # from the browser's Accept-Language
        page.set_input_files("#files", [str(files["good"])])  # choosing files needs the system dialog
        page.wait_for_selector("body[data-hashing=done]", state="attached", timeout=60_000)
        page.focus("#files")
        seen = []
        for _ in range(40):  # Tab until the age question
            page.keyboard.press("Tab")
            seen.append(page.evaluate("document.activeElement.id"))
            if seen[-1].startswith("age-"):
                break
        assert "reveal" in seen and seen[-1] == "age-adult"
        page.keyboard.press("Space")
        page.keyboard.press("Tab")
        assert page.evaluate("document.activeElement.id") == "pin"
        page.keyboard.type(PIN)
        page.keyboard.press("Tab")
        page.keyboard.type(PIN)
        page.keyboard.press("Tab")  # "see exactly what will be sent"
        page.keyboard.press("Tab")
        assert page.evaluate("document.activeElement.id") == "send"
        page.keyboard.press("Enter")
        page.wait_for_selector("#result:not([hidden])")
        assert page.evaluate("document.activeElement.id") == "result"
        assert page.get_attribute("#steps li[data-step=keep]", "aria-current") == "step"
        number = page.text_content("#case-number").strip()
        page.keyboard.press("Tab")
        assert page.evaluate("document.activeElement.id") == "copy-number"
        page.keyboard.press("Enter")
        page.wait_for_selector("#copy-status:not(:empty)")
        assert page.evaluate("navigator.clipboard.readText()") == number
        assert page.text_content("#copy-status") == catalog("ko")["js.copied"]
        _fits(page)
        page.screenshot(path=str(shots / "ko-submit-result-390.png"), full_page=True)
        # printing shows the case number and what to do with it, nothing else
        page.emulate_media(media="print")
        assert page.is_visible("#case-number") and not page.is_visible("header.top")
        assert not page.is_visible("#support") and not page.is_visible("#steps")
        page.emulate_media(media="screen")
        page.evaluate("window.print = () => { document.body.dataset.printed = '1'; }")
        page.click("#print-number")
        assert page.get_attribute("body", "data-printed") == "1"
    finally:
        ctx.close()


@needs_chromium
@pytest.mark.slow
def test_keyboard_only_status_and_withdraw_explains_a_shared_case(browser, client, shots):
    md5s, pdqs = [secrets.token_hex(16) for _ in range(2)], [secrets.token_hex(32) for _ in range(2)]
    first = _case(client, md5s=md5s, pdqs=pdqs)
    _case(client, md5s=md5s, pdqs=pdqs)  # the same two pictures, in a second case
    ctx = _phone(browser, client, "en")
    page = ctx.new_page()
    try:
        page.goto(ORIGIN + "/case")
        page.focus("#case")
        page.keyboard.type(first.lower().replace("-", " "))
        page.keyboard.press("Tab")
        assert page.evaluate("document.activeElement.id") == "case-pin"
        page.keyboard.type(PIN)
        page.keyboard.press("Enter")
        page.wait_for_selector("#case-status[data-status=active]")
        assert page.text_content("#st-items") == "2 pictures"  # pictures, not the 4 hashes
        assert page.text_content("#st-received") == "4"
        # withdrawing sits below the status and is not styled as the main action
        status_box = page.locator("#case-status").bounding_box()
        assert page.locator("#withdraw").bounding_box()["y"] > status_box["y"] + status_box["height"]
        assert page.evaluate("getComputedStyle(document.getElementById('withdraw')).backgroundColor") == "rgb(255, 255, 255)"
        assert page.evaluate("getComputedStyle(document.getElementById('check')).backgroundColor") != "rgb(255, 255, 255)"
        page.focus("#confirm-withdraw")
        page.keyboard.press("Space")
        page.keyboard.press("Tab")
        assert page.evaluate("document.activeElement.id") == "withdraw"
        page.keyboard.press("Enter")
        page.wait_for_selector("#case-status[data-status=withdrawn]")
        assert page.text_content("#st-active") == "4"
        shared = page.text_content("#st-shared")
        assert page.is_visible("#st-shared") and "another case holding the same pictures keeps them active" in shared
        assert "withdraw that case too" in shared
        _fits(page)
        _axe_clean(page)
        page.screenshot(path=str(shots / "en-case-withdrawn-shared-390.png"), full_page=True)
    finally:
        ctx.close()


def _luminance(rgb: tuple[int, int, int]) -> float:
    def ch(c):
        c = c / 255
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4
    r, g, b = (ch(c) for c in rgb)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


@needs_chromium
@pytest.mark.slow
def test_focus_ring_has_3_to_1_contrast_on_white(browser, client):
    ctx = _phone(browser, client, "en")
    page = ctx.new_page()
    try:
        page.goto(ORIGIN + "/case")
        page.focus("#case")
        page.keyboard.press("Tab")  # keyboard focus: :focus-visible applies
        page.keyboard.press("Tab")
        style = page.evaluate("(() => { const s = getComputedStyle(document.activeElement);"
                              " return [s.outlineStyle, s.outlineWidth, s.outlineColor]; })()")
        assert style[0] == "solid" and float(style[1].rstrip("px")) >= 2
        rgb = tuple(int(x) for x in re.findall(r"\d+", style[2])[:3])
        lum = _luminance(rgb)
        assert (1.05) / (lum + 0.05) >= 3, style
    finally:
        ctx.close()
