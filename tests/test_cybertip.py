"""NCMEC CyberTipline reports and one-year preservation holds (issue 15), on SQLite and PostgreSQL.

A case of benign pictures (drawn by ``imagegen``) confirmed into a bank of kind ``csam`` is
drafted, validated against the kept XSD and filed to a loopback stand-in of NCMEC's ``ispws``
API, which validates every document and records every call.
"""

from __future__ import annotations

import base64
import json
from datetime import timedelta

import pytest

from consentry.banks.service import BankService
from consentry.config import Settings
from consentry.cybertip.builder import MissingDetails, ReportError, build, schema_errors
from consentry.cybertip.client import IspwsUnavailable
from consentry.cybertip.holds import HoldError, HoldService
from consentry.cybertip.service import CybertipService, ReportConflict, ReportForbidden
from consentry.db.models import utcnow
from consentry.review.audit import AuditLog
from consentry.review.cases import CaseService, ItemInput
from consentry.review.exposure import ExposureLog
from consentry.review.users import UserService
from consentry.review.vault import Vault, VaultError
from cybertip_standin import CybertipStandIn
from imagegen import encode, scene

KEY = base64.b64encode(bytes(range(32))).decode()
REPORTER = {"first_name": "Robin", "last_name": "Example", "email": "tips@platform.example",
            "phone": "+1 555 0100", "company_template": "Example Platform"}
CREDS = json.dumps({"username": "esp-user", "password": "esp-pass"})
AI_EVIDENCE = [{"source": "c2pa", "claim": "ai_generated", "strength": "proof",
                "sentence": "Signed by a generator (trained algorithmic media)."}]
DETAILS = {"incident_time": "2026-11-30T10:00:00Z",
           "reported_user": {"screen_name": "lighthouse_fan", "emails": ["someone@users.example"],
                             "ips": [{"ip": "203.0.113.7", "event": "Upload", "at": "2026-11-30T09:59:00Z"}]}}


def png(seed: int) -> bytes:
    return encode(scene(seed=seed), "PNG")


@pytest.fixture
def settings(tmp_path):
    return Settings(home=tmp_path, vault_key=KEY, secret_key="test instance secret")


@pytest.fixture
def world(db, settings):
    banks = BankService(db)
    banks.create_bank("csam-list", "csam")
    banks.create_bank("ncii-list", "ncii")
    vault = Vault(settings, db)
    cases = CaseService(db, banks, vault=vault)
    svc = CybertipService(db, settings, vault=vault, banks=banks)
    return {"db": db, "banks": banks, "vault": vault, "cases": cases, "svc": svc}


def confirmed_case(world, bank="csam-list", *, seeds=(1, 2), evidence=AI_EVIDENCE, reveal=True):
    cases = world["cases"]
    case = None
    for n, seed in enumerate(seeds):
        case = cases.submit(ItemInput(media=png(seed), evidence=evidence if n == 0 else []),
                            uploader_id="acct-42", submitted_by="platform")
    if reveal:  # a reviewer looked at the first item
        ExposureLog(world["db"]).record_reveal("alice", case.items[0].id)
    cases.decide(case.id, "alice", "confirm", bank=bank)
    return cases.get(case.id)


def configure(svc, url, **kw):
    return svc.configure(environment="test", url=url, credentials_text=CREDS, reporter=REPORTER, **kw)


def events(db, prefix):
    return [e for e in AuditLog(db).list(limit=1000) if e.event_type.startswith(prefix)]


def test_end_to_end_file_hold_purge_refused_expiry_released(world):
    db, svc, vault = world["db"], world["svc"], world["vault"]
    case = confirmed_case(world)
    with CybertipStandIn() as ncmec:
        configure(svc, ncmec.url)
        draft = svc.draft(case.id, DETAILS, actor="alice", permitted=True)
        assert draft.status == "draft" and schema_errors(draft.report_xml) == []
        xml = draft.report_xml
        for must in ("<incidentType>Child Pornography (possession, manufacture, and distribution)</incidentType>",
                     "<incidentDateTime>2026-11-30T10:00:00Z</incidentDateTime>", "<firstName>Robin</firstName>",
                     "<email>tips@platform.example</email>", "<espIdentifier>acct-42</espIdentifier>",
                     "<screenName>lighthouse_fan</screenName>", "<email>someone@users.example</email>",
                     "<ipAddress>203.0.113.7</ipAddress>", "<eventName>Upload</eventName>"):
            assert must in xml, must
        assert ncmec.calls == []  # drafting sends nothing

        filed = svc.file(case.id, actor="alice", permitted=True)
        assert ncmec.calls == ["submit", "upload", "upload", "fileinfo", "fileinfo", "finish"]
        assert ncmec.invalid == []
        assert filed.status == "filed" and filed.ncmec_report_id == "1001" and ncmec.finished() == ["1001"]
        stored = ncmec.reports["1001"]
        got = {hashlib_md5(f["data"]) for f in stored["files"].values()}
        assert got == {it.md5 for it in case.items}  # the vaulted bytes themselves were uploaded
        details = [f["details"] for f in stored["files"].values()]
        first = next(d for d in details if case.items[0].md5 in d)
        second = next(d for d in details if case.items[1].md5 in d)
        assert "<generativeAi" in first and "AI-generation evidence 1" in first and "c2pa: ai_generated (proof)" in first
        assert "<generativeAi" not in second
        assert "<fileViewedByEsp>true</fileViewedByEsp>" in first  # revealed by a reviewer
        assert "<fileViewedByEsp>false</fileViewedByEsp>" in second
        assert f'hashType="SHA256">{case.items[0].sha256}<' in first and "<name>PDQ</name>" in first
        # filing again never files twice
        again = svc.file(case.id, actor="bob", permitted=True)
        assert again.ncmec_report_id == "1001" and ncmec.calls.count("submit") == 1
        assert ncmec.calls.count("finish") == 1

    # the report id is on the case and in the audit log
    assert "NCMEC CyberTipline report 1001" in world["cases"].get(case.id).note
    filed_ev = events(db, "cybertip.filed")
    assert len(filed_ev) == 1 and filed_ev[0].data["ncmec_report_id"] == "1001"

    # a one-year hold on the vault items, the records and the audit events
    holds = HoldService(db).list()
    assert len(holds) == 1
    hold = holds[0]
    assert hold.case_id == case.id and timedelta(days=364) < hold.expires_at - hold.placed_at <= timedelta(days=366)
    vault_ids = [it.vault_item_id for it in case.items]
    assert sorted(hold.scope["vault_items"]) == sorted(vault_ids)
    assert hold.scope["audit_through_seq"] == filed_ev[0].seq  # up to the filing itself
    for vid in vault_ids:
        assert vault.info(vid).legal_hold and utc(vault.info(vid).retain_until) >= hold.expires_at

    # purge refused: neither item by item nor by the retention sweep before the hold ends
    with pytest.raises(VaultError, match="preservation hold"):
        vault.set_hold(vault_ids[0], False, reason="tidy up", actor="carol")
    assert vault.purge_expired(now=utcnow() + timedelta(days=200)) == []
    with pytest.raises(HoldError, match="administrator"):
        HoldService(db).release_early(hold.id, actor="carol", role="moderator", reason="not needed any more")
    assert all(vault.info(v).legal_hold for v in vault_ids)

    # the clock moves past the year: the hold is released, audited, and the items can go
    later = hold.expires_at + timedelta(days=1)
    assert vault.purge_expired(now=hold.expires_at - timedelta(minutes=1)) == []
    purged = vault.purge_expired(now=later)
    assert sorted(purged) == sorted(vault_ids)
    released = events(db, "hold.released")
    assert [e.data["hold_id"] for e in released] == [hold.id]
    assert sorted(released[0].data["vault_items"]) == sorted(vault_ids)
    assert HoldService(db).list() == [] and HoldService(db).list(include_released=True)[0].released_by == "system"
    assert AuditLog(db).verify().ok


def utc(d):
    from datetime import timezone

    return d if d.tzinfo else d.replace(tzinfo=timezone.utc)


def hashlib_md5(data: bytes) -> str:
    import hashlib

    return hashlib.md5(data).hexdigest()


def test_missing_reporter_details_clear_error_and_nothing_sent(world):
    svc = world["svc"]
    case = confirmed_case(world)
    with CybertipStandIn() as ncmec:
        svc.configure(environment="test", url=ncmec.url, credentials_text=CREDS,
                      reporter={"first_name": "Robin"})
        with pytest.raises(MissingDetails) as err:
            svc.draft(case.id, DETAILS, actor="alice", permitted=True)
        assert "reporter last name" in str(err.value) and "reporter e-mail address" in str(err.value)
        assert "reporter first name" not in str(err.value)
        assert svc.get(case.id) is None
        with pytest.raises(Exception, match="no CyberTipline report draft"):
            svc.file(case.id, actor="alice", permitted=True)
        assert ncmec.calls == [] and ncmec.seen == []


def test_only_confirmed_csam_cases_and_only_reporters(world):
    svc = world["svc"]
    configure(svc, "http://127.0.0.1:9/ispws")
    ncii = confirmed_case(world, bank="ncii-list", seeds=(5,))
    with pytest.raises(ReportConflict, match="csam"):
        svc.draft(ncii.id, {}, actor="alice", permitted=True)
    open_case = world["cases"].submit(ItemInput(media=png(6)), uploader_id="acct-7")
    with pytest.raises(ReportConflict, match="open"):
        svc.draft(open_case.id, {}, actor="alice", permitted=True)
    case = confirmed_case(world, seeds=(7,))
    with pytest.raises(ReportForbidden, match="reporter permission"):
        svc.draft(case.id, {}, actor="mallory", permitted=False)
    assert svc.get(case.id) is None


def test_reporter_permission_granted_by_admin(db):
    users = UserService(db)
    users.create("alice", "a long benign passphrase", "moderator")
    assert users.get("alice").can_report is False
    assert users.set_reporter("alice", True, actor="admin-cli").can_report is True
    assert users.get("alice").to_dict()["reporter"] is True
    assert [e.event_type for e in AuditLog(db).list()][-1] == "user.reporter.grant"
    assert users.set_reporter("alice", False).can_report is False


def test_four_eyes_needs_a_second_reporter(world):
    svc = world["svc"]
    case = confirmed_case(world, seeds=(3,))
    with CybertipStandIn() as ncmec:
        configure(svc, ncmec.url, four_eyes=True)
        draft = svc.draft(case.id, {}, actor="alice", permitted=True)
        assert draft.status == "pending_approval"
        with pytest.raises(ReportConflict, match="second reporter"):
            svc.file(case.id, actor="alice", permitted=True)
        with pytest.raises(ReportConflict, match="different reporter"):
            svc.approve(case.id, actor="alice", permitted=True)
        assert svc.approve(case.id, actor="bob", permitted=True).approved_by == "bob"
        assert ncmec.calls == []
        assert svc.file(case.id, actor="alice", permitted=True).status == "filed"
        assert ncmec.calls[0] == "submit" and ncmec.calls[-1] == "finish"


def test_retries_resume_the_same_report_and_never_file_twice(world):
    svc = world["svc"]
    case = confirmed_case(world, seeds=(8, 9))
    with CybertipStandIn() as ncmec:
        configure(svc, ncmec.url)
        svc.draft(case.id, DETAILS, actor="alice", permitted=True)
        # the second upload fails (NCMEC busy, transport retries exhausted): the filing stops
        client = svc.client(retries=0, sleep=lambda s: None)
        ncmec.faults["upload"] = "http503"
        with pytest.raises(IspwsUnavailable):
            svc.file(case.id, actor="alice", permitted=True, client=client)
        failed = svc.get(case.id)
        assert failed.status == "failed" and failed.ncmec_report_id == "1001" and "could not take upload" in failed.last_error
        # retry: resumes report 1001 (no second /submit); /finish's answer is lost, the
        # transport retries it and NCMEC says "already finished": filed once
        ncmec.faults["finish"] = "lost"
        filed = svc.file(case.id, actor="alice", permitted=True, client=svc.client(sleep=lambda s: None))
        assert filed.status == "filed" and filed.ncmec_report_id == "1001"
        assert ncmec.calls.count("submit") == 1 and list(ncmec.reports) == ["1001"]
        assert ncmec.finished() == ["1001"] and len(ncmec.reports["1001"]["files"]) == 2
        assert len(HoldService(world["db"]).list()) == 1
        # a finished report cannot be retracted over the API: said clearly
        with pytest.raises(ReportConflict, match="contact NCMEC"):
            svc.retract(case.id, actor="alice", permitted=True)


def fail_once_at(svc, ncmec, case_id, step):
    """Draft the case and file it while NCMEC answers 503 at ``step`` (no transport retries)."""
    configure(svc, ncmec.url)
    svc.draft(case_id, {}, actor="alice", permitted=True)
    ncmec.faults[step] = "http503"
    with pytest.raises(IspwsUnavailable):
        svc.file(case_id, actor="alice", permitted=True, client=svc.client(retries=0, sleep=lambda s: None))


def test_expired_unfinished_report_starts_again_and_retract(world):
    svc = world["svc"]
    case = confirmed_case(world, seeds=(10,))
    with CybertipStandIn() as ncmec:
        fail_once_at(svc, ncmec, case.id, "fileinfo")
        ncmec.reports["1001"]["retracted"] = True  # NCMEC deleted the unfinished report (1 h idle)
        with pytest.raises(Exception, match="5001"):
            svc.file(case.id, actor="alice", permitted=True)
        assert svc.get(case.id).ncmec_report_id is None
        filed = svc.file(case.id, actor="alice", permitted=True)
        assert filed.ncmec_report_id == "1002" and ncmec.finished() == ["1002"]

    case2 = confirmed_case(world, seeds=(11,))
    with CybertipStandIn() as ncmec:
        fail_once_at(svc, ncmec, case2.id, "finish")
        out = svc.retract(case2.id, actor="alice", permitted=True)
        assert out.status == "retracted" and ncmec.reports["1001"]["retracted"] and ncmec.finished() == []
        assert [e.data["ncmec_report_id"] for e in events(world["db"], "cybertip.retracted")] == ["1001"]
        assert HoldService(world["db"]).list(case_id=case2.id) == []  # nothing filed: no hold


def test_wrong_credentials_refused_and_stored_encrypted(world):
    svc, db = world["svc"], world["db"]
    case = confirmed_case(world, seeds=(12,))
    with CybertipStandIn(password="other") as ncmec:
        configure(svc, ncmec.url)
        from consentry.db.models import InstanceSetting

        with db.session() as s:
            stored = json.dumps(s.get(InstanceSetting, "cybertip").value)
        assert "esp-pass" not in stored and "esp-user" not in stored
        assert "credentials" not in json.dumps(svc.describe()).replace("credentials_set", "")
        svc.draft(case.id, {}, actor="alice", permitted=True)
        with pytest.raises(Exception, match="refused the credentials"):
            svc.file(case.id, actor="alice", permitted=True)
        assert ncmec.calls == ["submit"] and svc.get(case.id).status == "failed"


def test_builder_validation_and_platform_details_checked(world):
    case = confirmed_case(world, seeds=(13,), evidence=[])
    with pytest.raises(ReportError, match="not an IP address"):
        build(case, REPORTER, {"reported_user": {"ips": [{"ip": "lighthouse"}]}})
    with pytest.raises(ReportError, match="unknown reported_user field"):
        build(case, REPORTER, {"reported_user": {"home_address": "x"}})
    with pytest.raises(ReportError, match="e-mail"):
        build(case, REPORTER, {"reported_user": {"emails": ["teapot"]}})
    d = build(case, REPORTER, {})
    assert "<generativeAi" not in d.files[0].file_details_xml("5", "f1")
    assert "personOrUserReported" in d.report_xml and "screenName" not in d.report_xml  # only what is known
    assert any("first file reached review" in line for line in d.summary)
    bad = d.report_xml.replace("<incidentType>Child Pornography (possession, manufacture, and distribution)",
                               "<incidentType>Teapot")
    assert any("incidentType" in e for e in schema_errors(bad))
    assert schema_errors('<!DOCTYPE r [<!ENTITY x "y">]><report>&x;</report>')[0].startswith("not well-formed")


# ------------------------------------------------------------------------------ HTTP API and console
import re  # noqa: E402

from fastapi.testclient import TestClient  # noqa: E402

from consentry.keys import KeyStore  # noqa: E402
from consentry.web.app import create_app  # noqa: E402

PASSWORD = "a long benign passphrase"


@pytest.fixture
def app(db, settings):
    application = create_app(settings, db, background=False)
    yield application
    application.state.consentry.match_log.close()


def _world_of(app, db):
    review = app.state.review
    return {"db": db, "banks": app.state.consentry.banks, "vault": review.vault, "cases": review.cases}


def test_api_draft_file_and_read_with_roles(app, db):
    world = _world_of(app, db)
    world["banks"].create_bank("csam-list", "csam")
    case = confirmed_case(world, seeds=(20,))
    store = KeyStore(db)
    admin, moderator, auditor, matcher = (store.create(r, r)[0] for r in ("admin", "moderator", "auditor", "matcher"))
    h = lambda k: {"Authorization": f"Bearer {k}"}  # noqa: E731
    with CybertipStandIn() as ncmec, TestClient(app, raise_server_exceptions=False) as c:
        CybertipService(db, app.state.consentry.settings).configure(environment="test", url=ncmec.url,
                                                                     credentials_text=CREDS, reporter=REPORTER)
        assert c.get(f"/v1/cases/{case.id}/cybertip", headers=h(moderator)).status_code == 404
        for key in (moderator, matcher):  # filing takes an admin key
            assert c.post(f"/v1/cases/{case.id}/cybertip/draft", json=DETAILS, headers=h(key)).status_code == 403
        r = c.post(f"/v1/cases/{case.id}/cybertip/draft", json={"reported_user": {"ips": ["teapot"]}}, headers=h(admin))
        assert r.status_code == 422 and "not an IP address" in r.json()["detail"]
        r = c.post(f"/v1/cases/{case.id}/cybertip/draft", json=DETAILS, headers=h(admin))
        assert r.status_code == 201 and "<screenName>lighthouse_fan</screenName>" in r.json()["report_xml"]
        assert ncmec.calls == []
        r = c.post(f"/v1/cases/{case.id}/cybertip/file", headers=h(admin))
        assert r.status_code == 200 and r.json()["status"] == "filed" and r.json()["ncmec_report_id"] == "1001"
        got = c.get(f"/v1/cases/{case.id}/cybertip", headers=h(moderator)).json()
        assert got["ncmec_report_id"] == "1001" and got["filed_at"]
        reports = c.get("/v1/cybertip/reports", headers=h(auditor)).json()["reports"]
        assert [(x["case_id"], x["status"]) for x in reports] == [(case.id, "filed")] and "report_xml" not in reports[0]
        holds = c.get("/v1/holds", headers=h(auditor)).json()["holds"]
        assert [x["case_id"] for x in holds] == [case.id] and holds[0]["active"]
        assert c.get("/v1/holds", headers=h(moderator)).status_code == 403


def _login(app, username):
    c = TestClient(app, raise_server_exceptions=False, follow_redirects=False)
    form = c.get("/console/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', form.text).group(1)
    r = c.post("/console/login", data={"username": username, "password": PASSWORD, "csrf_token": token})
    assert r.status_code == 303, r.text
    return c


def _csrf(page: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


def test_console_panel_reporter_permission_four_eyes_and_filing(app, db):
    world = _world_of(app, db)
    world["banks"].create_bank("csam-list", "csam")
    case = confirmed_case(world, seeds=(21,))
    users = UserService(db)
    for name in ("alice", "bob", "carol"):
        users.create(name, PASSWORD, "moderator")
    users.set_reporter("alice", True)
    users.set_reporter("bob", True)
    with CybertipStandIn() as ncmec:
        CybertipService(db, app.state.consentry.settings).configure(
            environment="test", url=ncmec.url, credentials_text=CREDS, reporter=REPORTER, four_eyes=True)
        carol = _login(app, "carol")
        page = carol.get(f"/console/cases/{case.id}", headers={"Accept": "text/html"}).text
        assert 'id="cybertip"' in page and 'id="cybertip-no-permission"' in page and "cybertip-draft" not in page
        r = carol.post(f"/console/cases/{case.id}/cybertip/draft", data={"csrf_token": _csrf(page), "details": "{}"})
        assert r.status_code == 403

        alice = _login(app, "alice")
        page = alice.get(f"/console/cases/{case.id}", headers={"Accept": "text/html"}).text
        r = alice.post(f"/console/cases/{case.id}/cybertip/draft",
                       data={"csrf_token": _csrf(page), "details": json.dumps(DETAILS)})
        assert r.status_code == 303
        page = alice.get(f"/console/cases/{case.id}", headers={"Accept": "text/html"}).text
        assert 'id="cybertip-status">pending_approval<' in page and "Waiting for a second reporter" in page
        assert "&lt;screenName&gt;lighthouse_fan&lt;/screenName&gt;" in page  # the XML that will be sent
        assert 'id="cybertip-file"' not in page and 'id="cybertip-approve"' not in page
        bob = _login(app, "bob")
        page = bob.get(f"/console/cases/{case.id}", headers={"Accept": "text/html"}).text
        assert bob.post(f"/console/cases/{case.id}/cybertip/approve", data={"csrf_token": _csrf(page)}).status_code == 303
        assert bob.post(f"/console/cases/{case.id}/cybertip/file", data={"csrf_token": "forged"}).status_code == 403
        assert ncmec.calls == []
        r = bob.post(f"/console/cases/{case.id}/cybertip/file", data={"csrf_token": _csrf(page)})
        assert r.status_code == 303 and ncmec.finished() == ["1001"]
        page = bob.get(f"/console/cases/{case.id}", headers={"Accept": "text/html"}).text
        assert 'id="cybertip-report-id">1001<' in page and "Preservation hold #1" in page
