"""The transparency report (issue 15 point 5): figures checked against a database filled with
known timings, the period bounds, and the HTML / PDF / CSV outputs and the command line."""

from __future__ import annotations

import csv
import io
import json
import re
import subprocess
from datetime import date, datetime, timedelta, timezone

import numpy as np
import pytest
from typer.testing import CliRunner

from consentry.reports.transparency import TransparencyError, compute, percentile, period

UTC = timezone.utc
START, END = period(date(2026, 1, 1), date(2026, 6, 30))
T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
BEFORE = START - timedelta(seconds=1)  # 2025-12-31 23:59:59: outside
AT_END = END  # 2026-07-01 00:00:00: outside (the end is exclusive)
LAST_IN = END - timedelta(seconds=1)  # 2026-06-30 23:59:59: inside

# Hours from a valid notice to removal: TAKE IT DOWN 1, 10, 47, 50; DSA 2, 30.
TID_HOURS = [1.0, 10.0, 47.0, 50.0]
DSA_HOURS = [2.0, 30.0]


def _fill(db) -> None:
    """A database with known events in and just outside the period 2026-01-01..2026-06-30."""
    from consentry.db.models import Bank, MatchLog
    from consentry.db.models_cybertip import CybertipReport
    from consentry.db.models_ledger import SweepHit
    from consentry.db.models_notices import Notice, StatementOfReasons
    from consentry.db.models_review import Case, CaseItem
    from consentry.db.models_victims import ExchangeConfig, ExchangeOutbox

    seq = iter(range(1, 10_000))

    def notice(regime, received, *, valid_after=None, decision=None, decided_after=None, status=None):
        valid_at = None if valid_after is None else received + timedelta(hours=valid_after)
        decided_at = None if decided_after is None else valid_at + timedelta(hours=decided_after)
        st = status or ("decided" if decision else ("open" if valid_at else "incomplete"))
        return Notice(number=f"N-{next(seq)}", regime=regime, status=st, channel="form", submitted_by="public",
                      received_at=received, valid_at=valid_at, decision=decision, decided_at=decided_at,
                      notifier_name="Alice Example", notifier_email="alice@example.org")

    with db.session() as s:
        ncii = Bank(name="victims", kind="ncii")
        csam = Bank(name="hub-csam", kind="csam")
        s.add_all([ncii, csam])
        s.flush()
        stop = ExchangeConfig(name="stopncii", type="stopncii", url="https://stopncii.example", key_encrypted="x",
                              bank="victims")
        s.add(stop)
        s.flush()
        # --- notices: TAKE IT DOWN, four removals of known duration (the validation delay varies)
        for i, h in enumerate(TID_HOURS):
            s.add(notice("take_it_down", T0 + timedelta(days=i), valid_after=0.5 * i, decision="remove",
                         decided_after=h))
        s.add(notice("take_it_down", T0, status="rejected", decision="reject"))  # invalid
        s.add(notice("take_it_down", T0))  # incomplete (never became valid)
        s.add(notice("take_it_down", T0, valid_after=1))  # valid, not decided yet: pending
        s.add(notice("take_it_down", LAST_IN, valid_after=0, decision="no_action", decided_after=3))
        s.add(notice("take_it_down", BEFORE, valid_after=0, decision="remove", decided_after=500))  # outside
        s.add(notice("take_it_down", AT_END, valid_after=0, decision="remove", decided_after=700))  # outside
        # --- DSA Art. 16
        s.add(notice("dsa_art16", START, valid_after=0, decision="disable", decided_after=DSA_HOURS[0]))
        s.add(notice("dsa_art16", T0, valid_after=2, decision="remove", decided_after=DSA_HOURS[1]))
        s.add(notice("dsa_art16", T0, status="rejected"))
        # --- statements of reasons: 2 removals (notice, sweep) and 1 disable in the period, 1 after
        for restriction, source, at in [("removal", "notice", T0), ("removal", "sweep", T0),
                                        ("disable", "notice", LAST_IN), ("removal", "notice", AT_END)]:
            s.add(StatementOfReasons(puid=f"sor-{next(seq)}", restriction=restriction, source=source, body={},
                                     content_id="c1", uploader_id="uploader-9", created_at=at))
        # --- sweep hits: content 1 twice in the ncii bank, content 2 once in the csam bank
        for content_pk, bank, entry, trigger, at in [(1, ncii, 11, "change", T0), (1, ncii, 12, "notice:7", T0),
                                                     (2, csam, 13, "bank-sweep", LAST_IN),
                                                     (3, csam, 14, "change", AT_END)]:
            s.add(SweepHit(content_pk=content_pk, content_id=f"c{content_pk}", entry_id=entry, bank_id=bank.id,
                           bank=bank.name, signal_type="pdq", distance=0, trigger=trigger, at=at))
        # --- API match requests: 3 in the period (results 0, 2, 1), 1 before
        for n, at in [(0, T0), (2, T0), (1, START), (5, BEFORE)]:
            s.add(MatchLog(at=at, route="/v1/match", signal_types="pdq", result_count=n))
        # --- review cases: an item with two matches in one bank (counted once) and one in another
        cases = []
        for i in range(5):
            c = Case(group_key=f"g{i}", sla_due_at=T0, created_at=T0)
            s.add(c)
            cases.append(c)
        s.flush()
        s.add(CaseItem(case_id=cases[0].id, added_at=T0, matches=[
            {"bank": "victims", "bank_kind": "ncii", "entry_id": 1},
            {"bank": "victims", "bank_kind": "ncii", "entry_id": 2},
            {"bank": "hub-csam", "bank_kind": "csam", "entry_id": 3}]))
        s.add(CaseItem(case_id=cases[1].id, added_at=T0, matches=[]))
        s.add(CaseItem(case_id=cases[2].id, added_at=BEFORE, matches=[{"bank": "victims", "bank_kind": "ncii"}]))
        # --- CyberTipline: production filed in period (2), test filed, production filed outside, a draft
        for case, env, filed, ncmec, retracted in [(cases[0], "production", T0, "101", None),
                                                   (cases[1], "production", LAST_IN, "102", T0 + timedelta(days=3)),
                                                   (cases[2], "test", T0, "9001", None),
                                                   (cases[3], "production", BEFORE, "100", None),
                                                   (cases[4], "production", None, None, None)]:
            s.add(CybertipReport(case_id=case.id, environment=env, status="retracted" if retracted else
                                 ("filed" if filed else "draft"), filed_at=filed, ncmec_report_id=ncmec,
                                 retracted_at=retracted, drafted_by="u"))
        # --- feedback outbox
        outbox = [("blocked", "sent", T0, "feedback"), ("blocked", "sent", LAST_IN, "feedback"),
                  ("not_blocked", "sent", T0, "feedback"), ("blocked", "pending", None, "feedback"),
                  ("blocked", "sent", AT_END, "feedback"), ("blocked", "sent", T0, "submit")]
        for status, state, sent, kind in outbox:
            s.add(ExchangeOutbox(exchange_id=stop.id, kind=kind, signal_type="pdq", value="0" * 64, status=status,
                                 dedupe=f"d{next(seq)}", state=state, sent_at=sent))


def test_percentile_is_linear_interpolation_like_numpy():
    xs = [1.0, 10.0, 47.0, 50.0]
    assert percentile(xs, 50) == pytest.approx(28.5)  # (10 + 47) / 2
    assert percentile(xs, 95) == pytest.approx(49.55)  # rank 2.85: 47 + 0.85 * 3
    rng = np.random.default_rng(5)
    for n in (1, 2, 7, 100):
        v = rng.uniform(0, 200, n).tolist()
        for p in (0, 50, 90, 95, 100):
            assert percentile(v, p) == pytest.approx(float(np.percentile(v, p)))
    assert percentile([], 50) is None


def test_figures_match_known_timings(db):
    _fill(db)
    f = compute(db, START, END)

    # notices per regime, by receipt time; the two outside the bounds are not counted
    assert f.notices_source == "notices"
    tid, dsa = f.notices_by_regime["take_it_down"], f.notices_by_regime["dsa_art16"]
    assert (tid["total"], tid["valid"], tid["invalid"], tid["incomplete"], tid["removed"], tid["no_action"]) == \
        (8, 6, 1, 1, 4, 1)
    assert (dsa["total"], dsa["valid"], dsa["invalid"], dsa["removed"]) == (3, 2, 1, 2)

    # time to removal: from the clock start (valid_at), not from receipt
    t = f.removal_by_regime["take_it_down"]
    assert t.count == 4 and t.pending == 1
    assert t.median_hours == pytest.approx(28.5)
    assert t.p95_hours == pytest.approx(49.55)
    assert (t.within_deadline, t.share_within_deadline) == (3, pytest.approx(0.75))
    d = f.removal_by_regime["dsa_art16"]
    assert (d.count, d.median_hours, d.p95_hours, d.share_within_deadline) == \
        (2, pytest.approx(16.0), pytest.approx(2 + 0.95 * 28), pytest.approx(1.0))
    allh = TID_HOURS + DSA_HOURS
    assert f.removal.count == 6 and f.removal.pending == 1
    assert f.removal.median_hours == pytest.approx(float(np.percentile(allh, 50))) == pytest.approx(20.0)
    assert f.removal.p95_hours == pytest.approx(float(np.percentile(allh, 95))) == pytest.approx(49.25)
    assert f.removal.share_within_deadline == pytest.approx(5 / 6)

    # statements of reasons
    assert f.statements_by_restriction == {"removal": 2, "disable": 1}
    assert f.statements_by_source == {"notice": 2, "sweep": 1}

    # sweeps: 3 hits in the period on 2 contents; the trigger's notice id is not reported
    assert (f.sweep_hits, f.sweep_contents) == (3, 2)
    assert f.sweep_by_bank_kind == {"ncii": 2, "csam": 1}
    assert f.sweep_by_trigger == {"change": 1, "notice": 1, "bank-sweep": 1}
    assert f.sweep_matches_by_exchange == {"stopncii": 2, "(local banks)": 1}

    # matches
    assert (f.api_match_requests, f.api_requests_with_match, f.api_match_results) == (3, 2, 3)
    assert f.review_matches_by_bank_kind == {"ncii": 1, "csam": 1}
    assert f.review_matches_by_exchange == {"stopncii": 1, "(local banks)": 1}

    # CyberTipline: filed (has NCMEC's id) in the period, production vs test; retractions
    assert (f.cybertip_filed, f.cybertip_filed_test, f.cybertip_retracted) == (2, 1, 1)

    # feedback actually sent in the period (not pending, not submissions)
    assert f.feedback_sent == {"stopncii": {"blocked": 2, "not_blocked": 1}}
    assert f.feedback_total == 3

    # appeals: none recorded by this instance, said as such
    assert f.appeals is None and f.appeals_source == "none"


def test_period_bounds(db):
    _fill(db)
    # only the last day of the period: the notice and the sweep hit at 23:59:59 of 2026-06-30
    s, e = period(date(2026, 6, 30), date(2026, 6, 30))
    f = compute(db, s, e)
    assert f.notices_by_regime == {"take_it_down": {"valid": 1, "invalid": 0, "incomplete": 0, "duplicate": 0,
                                                    "removed": 0, "no_action": 1, "total": 1}}
    assert (f.sweep_hits, f.cybertip_filed) == (1, 1)
    # the day after: the events at exactly 2026-07-01 00:00
    f2 = compute(db, *period(date(2026, 7, 1), date(2026, 7, 1)))
    assert f2.removal.median_hours == pytest.approx(700.0) and f2.removal.within_deadline == 0
    assert f2.sweep_hits == 1 and f2.feedback_total == 1
    with pytest.raises(TransparencyError):
        period(date(2026, 2, 1), date(2026, 1, 1))


def test_empty_database_says_no_data(tmp_path):
    from consentry.db import Database
    from consentry.reports.transparency_render import render_html

    db = Database(f"sqlite:///{tmp_path / 'e.db'}")
    db.upgrade()
    try:
        f = compute(db, START, END)
    finally:
        db.dispose()
    assert f.notices_by_regime == {} and f.removal.count == 0 and f.removal.median_hours is None
    html = render_html(f)
    assert "No notices were received in this period" in html and "No appeal data" in html


def _text_of_pdf(path) -> str:
    return subprocess.run(["pdftotext", "-layout", str(path), "-"], capture_output=True, text=True,
                          check=True).stdout


def test_cli_writes_html_pdf_csv(tmp_path, monkeypatch, request):
    from consentry.cli import app
    from consentry.config import set_settings
    from consentry.db import Database

    url = f"sqlite:///{tmp_path / 'home' / 'consentry.db'}"
    monkeypatch.setenv("CONSENTRY_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("DATABASE_URL", url)
    set_settings(None)
    request.addfinalizer(lambda: set_settings(None))
    db = Database(url)
    db.upgrade()
    _fill(db)
    db.dispose()

    out = tmp_path / "report"
    r = CliRunner().invoke(app, ["report", "transparency", "--from", "2026-01-01", "--to", "2026-06-30",
                                 "--out", str(out)])
    assert r.exit_code == 0, r.output
    summary = json.loads(r.stdout)
    assert summary["notices"] == 11 and summary["removed"] == 6 and summary["median_hours_to_removal"] == 20.0
    assert sorted(p.name for p in out.iterdir()) == ["transparency.csv", "transparency.html", "transparency.pdf"]

    # CSV: one row per figure
    rows = list(csv.DictReader(io.StringIO((out / "transparency.csv").read_text())))
    assert list(rows[0]) == ["section", "metric", "dimension", "value"]
    val = {(x["section"], x["metric"], x["dimension"]): x["value"] for x in rows}
    assert val[("removal", "median_hours", "take_it_down")] == "28.5"
    assert val[("removal", "p95_hours", "take_it_down")] == "49.55"
    assert val[("removal", "share_within_48h", "take_it_down")] == "0.75"
    assert val[("notices", "invalid", "dsa_art16")] == "1"
    assert val[("sweeps", "contents_found", "")] == "2"
    assert val[("statements", "by_source", "sweep")] == "1"
    assert val[("matches", "sweep_by_exchange", "stopncii")] == "2"
    assert val[("cybertipline", "filed", "production")] == "2"
    assert val[("feedback", "sent", "stopncii/blocked")] == "2"

    # HTML: self-contained, charts as inline SVG, no script, no personal data
    html = (out / "transparency.html").read_text()
    assert "<script" not in html and "http://" not in html.replace("http://www.w3.org/2000/svg", "")
    assert "https://" not in html
    assert len(re.findall(r"<svg id=\"chart-", html)) == 5  # notices, removal, kinds, exchanges, feedback
    assert "28.50" in html and "49.55" in html and "75.0 %" in html
    assert re.search(r"removal</td><td class=\"num\">2<", html)
    for private in ("Alice", "alice@example.org", "N-1", "c1", "notice:7", "uploader-9", "sor-"):
        assert private not in html
    assert "No appeal data" in html

    # PDF: its text carries the same figures
    text = _text_of_pdf(out / "transparency.pdf")
    assert "Transparency report" in text and "2026-01-01 to 2026-06-30" in text
    assert re.search(r"TAKE IT\s+4\s+28\.50\s+49\.55", text), text
    assert re.search(r"All regimes\s+6\s+20\.00\s+49\.25\s+5\s+83\.3 %\s+1", text), text
    assert "Alice" not in text

    # only the CSV; a wrong format or day is a usage error
    r2 = CliRunner().invoke(app, ["report", "transparency", "--from", "2026-01-01", "--to", "2026-06-30",
                                  "--out", str(tmp_path / "csv-only"), "--format", "csv"])
    assert r2.exit_code == 0 and [p.name for p in (tmp_path / "csv-only").iterdir()] == ["transparency.csv"]
    bad = CliRunner().invoke(app, ["report", "transparency", "--from", "2026-13-01", "--to", "2026-06-30",
                                   "--out", str(out)])
    assert bad.exit_code == 2
    bad = CliRunner().invoke(app, ["report", "transparency", "--from", "2026-01-01", "--to", "2026-06-30",
                                   "--out", str(out), "--format", "docx"])
    assert bad.exit_code == 2


def test_http_route_shares_the_core(tmp_path):
    from fastapi.testclient import TestClient

    from consentry.config import Settings
    from consentry.db import Database
    from consentry.keys import KeyStore
    from consentry.web.app import create_app

    db = Database(f"sqlite:///{tmp_path / 'consentry.db'}")
    db.upgrade()
    _fill(db)
    store = KeyStore(db)
    auditor, moderator = store.create("auditor", "a")[0], store.create("moderator", "m")[0]
    app = create_app(Settings(home=tmp_path), db, background=False)
    url = "/v1/reports/transparency?from=2026-01-01&to=2026-06-30"
    try:
        with TestClient(app, raise_server_exceptions=False) as c:
            assert c.get(url).status_code == 401
            assert c.get(url, headers={"Authorization": f"Bearer {moderator}"}).status_code == 403
            h = {"Authorization": f"Bearer {auditor}"}
            body = c.get(url, headers=h).json()
            assert body["removal_by_regime"]["take_it_down"]["median_hours"] == pytest.approx(28.5)
            assert body["end"] == "2026-07-01T00:00:00+00:00" and body["sweep_contents"] == 2
            r = c.get(url + "&format=csv", headers=h)
            assert r.status_code == 200 and r.text == compute(db, START, END).to_csv()
            r = c.get(url + "&format=html", headers=h)
            assert r.status_code == 200 and "<svg id=\"chart-removal\"" in r.text and "<script" not in r.text
            assert c.get(url.replace("2026-06-30", "2025-06-30"), headers=h).status_code == 422
            assert c.get(url.replace("2026-01-01", "nonsense"), headers=h).status_code == 422
    finally:
        db.dispose()
