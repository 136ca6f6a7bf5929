"""Review cases, queue, decisions, four-eyes, exposure log and console users (SQLite and PostgreSQL).

Only benign pictures drawn by ``imagegen`` are used.
"""

from __future__ import annotations

import base64
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from consentry.banks.matcher import Matcher, QuerySignals
from consentry.banks.service import BankService
from consentry.config import Settings
from consentry.db.models import utcnow
from consentry.db.models_review import Case, CaseItem, ConsoleSession, User
from consentry.review.audit import AuditLog
from consentry.review.cases import CaseConflict, CaseError, CaseNotFound, CaseService, ItemInput
from consentry.review.exposure import ExposureLog
from consentry.review.users import UserError, UserExists, UserService
from imagegen import encode, scene

PASSWORD = "a long benign passphrase"


def png(seed: int) -> bytes:
    return encode(scene(seed=seed), "PNG")


@pytest.fixture
def banks(db):
    svc = BankService(db)
    svc.create_bank("known", "ncii")
    svc.create_bank("partners", "ncii", shared=True)
    svc.create_bank("fp", "allow")
    return svc


@pytest.fixture
def cases(db, banks):
    return CaseService(db, banks)


def _match(db, *, pdq=None, md5=None):
    m = Matcher(db)
    m.load()
    q = QuerySignals(exact={"md5": md5} if md5 else {})
    if pdq:
        q.pdq = [pdq]
    return m.match(q, None)


def _events(db, event_type=None):
    return [e for e in AuditLog(db).list(limit=1000) if event_type is None or e.event_type == event_type]


def test_grouping_by_uploader_priority_and_sla_order(db, cases):
    a1 = cases.submit(ItemInput(media=png(1)), uploader_id="acct-1", priority=30, submitted_by="t")
    a2 = cases.create_from_action({"queue": "manual", "priority": 90}, ItemInput(media=png(2)),
                                  uploader_id="acct-1")
    assert a2.id == a1.id and a2.item_count == 2  # one case per account: decided once
    assert a2.priority == 90 and a2.sla_due_at < a1.sla_due_at  # the urgent item tightened the SLA
    again = cases.submit(ItemInput(media=png(2)), uploader_id="acct-1", priority=10)
    assert again.id == a1.id and again.item_count == 2  # the same content is not added twice
    b = cases.submit(ItemInput(media=png(3)), uploader_id="acct-2", priority=60)
    other_queue = cases.submit(ItemInput(media=png(4)), queue="ai", uploader_id="acct-1", priority=60)
    c1 = cases.submit(ItemInput(sha256="ab" * 32), priority=60)
    c2 = cases.submit(ItemInput(md5="cd" * 16), priority=60)
    assert len({a1.id, b.id, other_queue.id, c1.id, c2.id}) == 5
    order = [c.id for c in cases.list_queue()]
    assert order[0] == a1.id  # priority 90
    assert order[1:] == sorted(order[1:], key=lambda i: cases.get(i).sla_due_at)  # then SLA
    assert order[1:] == [b.id, other_queue.id, c1.id, c2.id]
    assert [c.id for c in cases.list_queue(queue="ai")] == [other_queue.id]
    full = cases.get(a1.id)
    assert [i.pdq is not None and i.md5 is not None and i.sha256 for i in full.items]
    assert full.items[0].vault_item_id is None  # no vault: signals only
    assert full.source == "manual" and full.uploader_id == "acct-1"
    created = _events(db, "case.created")
    assert {e.data["case_id"] for e in created} == {a1.id, b.id, other_queue.id, c1.id, c2.id}


def test_bad_submissions_are_refused_with_clear_errors(cases):
    with pytest.raises(CaseError, match="at least one hash"):
        cases.submit(ItemInput())
    with pytest.raises(CaseError, match="64 hex"):
        cases.submit(ItemInput(sha256="zz"))
    with pytest.raises(CaseError, match="PDQ"):
        cases.submit(ItemInput(pdq="12"))
    with pytest.raises(CaseError, match="priority"):
        cases.submit(ItemInput(md5="ab" * 16), priority=101)
    with pytest.raises(CaseError, match="queue"):
        cases.submit(ItemInput(md5="ab" * 16), queue="bad queue!")
    with pytest.raises(CaseError, match="cannot read"):
        cases.submit(ItemInput(media=b"not an image at all"))
    with pytest.raises(CaseNotFound):
        cases.get(424242)


def test_claim_release_and_claim_timeout(db, cases):
    c = cases.submit(ItemInput(media=png(5)), uploader_id="acct-9")
    got = cases.claim(c.id, "alice")
    assert got.status == "claimed" and got.claim_holder() == "alice"
    with pytest.raises(CaseConflict, match="claimed by alice"):
        cases.claim(c.id, "bob")
    with pytest.raises(CaseConflict):
        cases.decide(c.id, "bob", "escalate")
    with pytest.raises(CaseConflict):
        cases.release(c.id, "bob")
    assert cases.claim(c.id, "alice").claim_holder() == "alice"  # renewing is fine
    with db.session() as s:  # the claim lapses
        s.execute(update(Case).where(Case.id == c.id).values(claim_expires_at=utcnow() - timedelta(seconds=1)))
    assert cases.get(c.id).claim_holder() is None
    assert cases.claim(c.id, "bob").claim_holder() == "bob"
    released = cases.release(c.id, "bob")
    assert released.status == "open" and released.claim_holder() is None


def test_confirm_adds_pdq_and_md5_and_the_next_match_finds_them(db, cases):
    c = cases.submit(ItemInput(media=png(6)), uploader_id="acct-3")
    item = c.items[0]
    assert not _match(db, pdq=item.pdq).matches
    cases.claim(c.id, "alice")
    with pytest.raises(CaseError, match="needs a bank"):
        cases.decide(c.id, "alice", "confirm")
    with pytest.raises(CaseError, match="allow bank"):
        cases.decide(c.id, "alice", "confirm", bank="fp")
    d = cases.decide(c.id, "alice", "confirm", bank="known", note="benign test")
    assert d.status == "applied" and len(d.result["entries"]) == 2
    after = cases.get(c.id)
    assert after.status == "decided" and after.decided_at is not None and after.claim_holder() is None
    hits = _match(db, pdq=item.pdq).matches
    assert [(h.bank, h.signal_type, h.distance) for h in hits] == [("known", "pdq", 0)]
    assert [h.bank for h in _match(db, md5=item.md5).matches] == ["known"]
    entry = BankService(db).find_entry("known", "pdq", item.pdq)
    assert entry.added_by == "reviewer:alice" and f"case:{c.id}" in entry.external_ids
    with pytest.raises(CaseConflict, match="already decided"):
        cases.decide(c.id, "alice", "dismiss")
    ev = _events(db, "decision")[-1]
    assert ev.actor == "alice" and ev.data["kind"] == "confirm" and ev.data["entries"] == d.result["entries"]
    assert AuditLog(db).verify().ok


def test_four_eyes_holds_shared_bank_additions_until_a_second_reviewer(db, cases):
    c = cases.submit(ItemInput(media=png(7)), uploader_id="acct-4")
    pdq = c.items[0].pdq
    d = cases.decide(c.id, "alice", "confirm", bank="partners")
    assert d.status == "pending_second_review"
    assert cases.get(c.id).status == "pending_approval"
    assert BankService(db).list_entries("partners") == [] and not _match(db, pdq=pdq).matches
    with pytest.raises(CaseConflict, match="different reviewer"):
        cases.approve(d.id, "alice")
    with pytest.raises(CaseConflict, match="waiting for a second reviewer"):
        cases.decide(c.id, "bob", "dismiss")
    assert [p.id for p in cases.pending_approvals(exclude_reviewer="bob")] == [d.id]
    assert cases.pending_approvals(exclude_reviewer="alice") == []
    done = cases.approve(d.id, "bob")
    assert done.status == "applied" and done.second_reviewer == "bob" and done.result["entries"]
    assert cases.get(c.id).status == "decided"
    assert [m.bank for m in _match(db, pdq=pdq).matches] == ["partners"]
    with pytest.raises(CaseConflict):
        cases.approve(d.id, "carol")
    approved = _events(db, "decision.approved")
    assert approved and approved[-1].actor == "bob" and approved[-1].data["first_reviewer"] == "alice"

    # a rejected second review adds nothing and puts the case back in the queue
    c2 = cases.submit(ItemInput(media=png(8)), uploader_id="acct-5")
    d2 = cases.decide(c2.id, "alice", "confirm", bank="partners")
    r = cases.reject(d2.id, "bob", note="not the same material")
    assert r.status == "rejected" and cases.get(c2.id).status == "open"
    assert not _match(db, pdq=c2.items[0].pdq).matches


def test_dismiss_to_allow_bank_and_escalation(db, cases):
    c = cases.submit(ItemInput(media=png(9)), uploader_id="acct-6")
    with pytest.raises(CaseError, match="only add to an allow bank"):
        cases.decide(c.id, "alice", "dismiss", bank="known")
    cases.decide(c.id, "alice", "dismiss", bank="fp")
    outcome = _match(db, pdq=c.items[0].pdq)
    assert [m.bank for m in outcome.allowed_by] == ["fp"]

    e = cases.submit(ItemInput(media=png(10)), uploader_id="acct-7", priority=20)
    cases.decide(e.id, "alice", "escalate")
    esc = cases.get(e.id)
    assert esc.status == "escalated" and esc.priority >= 80
    with pytest.raises(CaseConflict, match="curator or admin"):
        cases.decide(e.id, "bob", "dismiss", role="moderator")
    assert cases.decide(e.id, "carol", "dismiss", role="curator").status == "applied"
    assert cases.get(e.id).status == "decided"
    assert cases.counts_by_status()["decided"] == 2


def test_reveals_are_counted_per_reviewer_and_audited(db, cases):
    c = cases.submit(ItemInput(media=png(11)), uploader_id="acct-8")
    log = ExposureLog(db, budget=2)
    item = c.items[0].id
    assert log.today("alice").today == 0
    first = log.record_reveal("alice", item)
    assert first.today == 1 and not first.over_budget
    assert log.record_reveal("alice", item).over_budget
    assert log.today("bob").today == 0 and log.reveals_of_item(item) == 2
    reveals = _events(db, "reveal")
    assert [(e.actor, e.data["item_id"]) for e in reveals] == [("alice", item), ("alice", item)]
    with pytest.raises(CaseNotFound):
        log.record_reveal("alice", 999999)


def test_users_argon2_sessions_and_disable(db):
    users = UserService(db, session_hours=1)
    u = users.create("alice", PASSWORD, "moderator")
    with db.session() as s:
        stored = s.scalar(select(User.password_hash).where(User.username == "alice"))
    assert stored.startswith("$argon2") and PASSWORD not in stored
    with pytest.raises(UserExists):
        users.create("alice", PASSWORD, "moderator")
    with pytest.raises(UserError, match="role"):
        users.create("bob", PASSWORD, "overlord")
    with pytest.raises(UserError, match="password"):
        users.create("bob", "short", "moderator")
    assert users.authenticate("alice", PASSWORD).role == "moderator"
    assert users.authenticate("alice", PASSWORD + "x") is None
    assert users.authenticate("nobody", PASSWORD) is None
    token, info = users.start_session(u)
    assert users.session(token).user.username == "alice" and info.csrf_token
    with db.session() as s:  # only a digest of the token is stored
        assert s.scalar(select(ConsoleSession.token_hash)) != token
    assert users.session(token + "x") is None and users.session(None) is None
    with db.session() as s:
        s.execute(update(ConsoleSession).values(expires_at=utcnow() - timedelta(seconds=1)))
    assert users.session(token) is None
    token2, _ = users.start_session(u)
    assert users.session(token2) is not None
    users.set_disabled("alice")
    assert users.session(token2) is None and users.authenticate("alice", PASSWORD) is None
    assert [x.disabled for x in users.list()] == [True]


def test_media_is_kept_only_in_the_encrypted_vault(db, banks, tmp_path):
    from consentry.review.vault import Vault

    settings = Settings(home=tmp_path).with_(vault_key=base64.b64encode(bytes(range(32))).decode())
    vault = Vault.from_settings(settings, db)
    cases = CaseService(db, banks, vault=vault)
    data = png(12)
    c = cases.submit(ItemInput(media=data), uploader_id="acct-10")
    item = c.items[0]
    assert item.vault_item_id and item.media_type == "image/png"
    got, mime = cases.media(item.id)
    assert got == data and mime == "image/png"
    blobs = [p for p in (tmp_path / "vault").rglob("*") if p.is_file()]
    assert blobs and all(data[100:164] not in p.read_bytes() for p in blobs)
    assert not any(item.sha256 in p.name for p in blobs)
    hashes_only = cases.submit(ItemInput(md5="ef" * 16))
    with pytest.raises(CaseNotFound, match="no media"):
        cases.media(hashes_only.items[0].id)


def test_migration_matches_the_models(db):
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from consentry.db.models import Base

    mine = {"users", "console_sessions", "cases", "case_items", "decisions", "reveals"}
    with db.engine.connect() as conn:
        diffs = compare_metadata(MigrationContext.configure(conn), Base.metadata)

    def table_of(d):
        d = d[0] if isinstance(d, list) else d  # modify_* diffs come wrapped in a list
        for part in d[1:]:
            if isinstance(part, str) and part in mine:
                return part
            for obj in (part, getattr(part, "table", None)):
                if getattr(obj, "name", None) in mine and hasattr(obj, "columns"):
                    return obj.name
        return None

    assert [d for d in diffs if table_of(d)] == []


def test_users_and_cases_commands(tmp_path, monkeypatch):
    """``consentry users`` and ``consentry cases`` (in process, SQLite under CONSENTRY_HOME)."""
    import json

    from typer.testing import CliRunner

    from consentry.cli import app
    from consentry.config import set_settings
    from consentry.db import Database

    monkeypatch.setenv("CONSENTRY_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("DATABASE_URL", raising=False)
    set_settings(None)
    runner = CliRunner()

    def run(*args, stdin=None):
        return runner.invoke(app, list(args), input=stdin)

    try:
        r = run("users", "create", "alice", "--role", "moderator", "--password-stdin", stdin=PASSWORD + "\n")
        assert r.exit_code == 0 and "created user alice (moderator)" in r.stdout, r.output
        r = run("users", "create", "bob", "--role", "overlord", "--password-stdin", stdin=PASSWORD + "\n")
        assert r.exit_code == 2 and "role must be one of" in r.output
        r = run("users", "create", "alice", "--role", "moderator", "--password-stdin", stdin=PASSWORD + "\n")
        assert r.exit_code == 1 and "already exists" in r.output
        assert run("users", "disable", "alice").exit_code == 0
        users = json.loads(run("users", "list", "--format", "json").stdout)
        assert [(u["username"], u["role"], u["disabled"]) for u in users] == [("alice", "moderator", True)]
        assert run("users", "disable", "nobody").exit_code == 1

        db = Database(f"sqlite:///{tmp_path / 'home' / 'consentry.db'}")
        try:
            cs = CaseService(db)
            low = cs.submit(ItemInput(md5="ab" * 16), priority=10, uploader_id="acct-low")
            high = cs.submit(ItemInput(md5="cd" * 16), priority=95, uploader_id="acct-high")
        finally:
            db.dispose()
        listed = json.loads(run("cases", "list", "--format", "json").stdout)
        assert [c["id"] for c in listed] == [high.id, low.id]
        assert "acct-high" in run("cases", "list").stdout
        r = run("cases", "list", "--status", "bogus")
        assert r.exit_code == 2 and "unknown status" in r.output
    finally:
        set_settings(None)


def test_undo_pending_and_escalated_decisions(db, cases):
    from consentry.review.cases import UNDO_SECONDS

    shared = cases.submit(ItemInput(media=png(91)), uploader_id="acct-u1", priority=30)
    d = cases.decide(shared.id, "alice", "confirm", bank="partners", note="n1")
    assert cases.undoable(d.id, "alice") > UNDO_SECONDS - 5 and cases.undoable(d.id, "bob") == 0
    u = cases.undo(d.id, "alice")
    assert u.status == "undone" and u.result["withdrawn"] == []  # nothing had been written
    assert cases.pending_approvals() == [] and cases.get(shared.id).status == "open"
    with pytest.raises(CaseConflict):
        cases.approve(d.id, "bob")  # an undone decision cannot be approved any more

    esc = cases.submit(ItemInput(media=png(92)), uploader_id="acct-u2", priority=30)
    d = cases.decide(esc.id, "alice", "escalate")
    assert cases.get(esc.id).priority == 80
    cases.undo(d.id, "alice")
    back = cases.get(esc.id)
    assert (back.status, back.priority) == ("open", 30)
    # an approved addition can no longer be undone by the first reviewer
    appr = cases.submit(ItemInput(media=png(93)), uploader_id="acct-u3")
    d = cases.decide(appr.id, "alice", "confirm", bank="partners")
    cases.approve(d.id, "bob")
    assert cases.undoable(d.id, "alice") == 0
    with pytest.raises(CaseConflict, match="cannot be undone"):
        cases.undo(d.id, "alice")
    assert [e.event_type for e in _events(db, "decision.undone")] == ["decision.undone"] * 2


def test_enqueue_handler_hashes_the_upload_even_when_preserved(db, banks, tmp_path):
    import hashlib

    from consentry.policy.runtime import EnqueueRequest
    from consentry.review.vault import Vault

    vault = Vault.from_settings(Settings(home=tmp_path).with_(
        vault_key=base64.b64encode(b"k" * 32).decode()), db)
    data = encode(scene(seed=94), "JPEG")
    vid = vault.put(data, reason="rules: block-known-abuse", content_type="image/jpeg", actor="rules")
    svc = CaseService(db, banks, vault=vault)
    req = EnqueueRequest("known-abuse", 90, "block-known-abuse", {}, {"sha256": None, "pdq": None},
                         [{"bank": "known", "bank_kind": "ncii"}], [], "acct-e", None, vid, data, "photo")
    case = svc.enqueue_handler()(req)
    (item,) = svc.get(case.id).items
    assert (item.media_type, item.content_type) == ("image/jpeg", "photo")
    assert item.md5 == hashlib.md5(data).hexdigest() and item.sha256 == hashlib.sha256(data).hexdigest()
    assert item.vault_item_id == vid and len(vault.list()) == 1
    assert svc.preview(item.id)[:3] == b"\xff\xd8\xff"
    assert svc.media(item.id) == (data, "image/jpeg")
    # an item stored earlier without its media type is still served as what its bytes are
    with db.session() as s:
        s.execute(update(CaseItem).where(CaseItem.id == item.id).values(media_type=None))
    assert svc.media(item.id)[1] == "image/jpeg"


def test_confirming_a_vaulted_picture_stores_its_crops_and_rotations(db, banks, tmp_path):
    """Issue 21: with the picture in the vault, the confirmed PDQ entry also gets its stored-side
    variants, so a copy cropped by 20 % later meets it; without the vault, the plain entry only."""
    from consentry.banks.matcher import query_from_content
    from consentry.config import MediaLimits
    from consentry.media.content import Content
    from consentry.review.vault import Vault

    settings = Settings(home=tmp_path).with_(vault_key=base64.b64encode(bytes(range(32))).decode())
    pictures = {True: scene(640, 480, seed=81), False: scene(640, 480, seed=82)}
    for vaulted, pic in pictures.items():
        cases = CaseService(db, banks, vault=Vault.from_settings(settings, db) if vaulted else None)
        c = cases.submit(ItemInput(media=encode(pic, "PNG")), uploader_id="acct-21")
        cases.claim(c.id, "alice")
        d = cases.decide(c.id, "alice", "confirm", bank="known")
        pdq_entry = next(e for e in d.result["entries"] if banks.get_entry(e).signal_type == "pdq")
        assert bool(banks.variants_for([pdq_entry]).get(pdq_entry)) is vaulted
        cropped = Content.from_bytes(encode(pic.crop((64, 48, 576, 432)), "JPEG"), MediaLimits())
        hits = Matcher(db).load().match(query_from_content(cropped, canonical=False)).matches
        assert [h.entry_id for h in hits] == ([pdq_entry] if vaulted else [])
