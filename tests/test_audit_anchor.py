"""Anchoring the audit chain (issue 12.10): a log cut short (head moved back) or wiped still forms a
valid chain, so ``verify`` checks heads kept elsewhere: ``--expect-head``, signed checkpoints kept
under CONSENTRY_HOME and sent to webhook sinks."""

from __future__ import annotations

import json

import httpx
import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from consentry.db.models_audit import AuditEvent
from consentry.policy.rules import Sink
from consentry.review.audit import AuditLog, ExpectedHead, event_hash, parse_head, set_checkpointer
from consentry.review.checkpoints import (CHECKPOINT_EVENT, Checkpointer, CheckpointError, sign_checkpoint,
                                          verify_checkpoint)
from consentry.review.webhooks import EVENT_HEADER, SIGNATURE_HEADER, WebhookDispatcher, verify_signature


def _fill(db, n=6):
    log = AuditLog(db)
    for i in range(n):
        log.record(f"test.event{i}", "alice", {"i": i, "note": "a lighthouse at dusk"})
    return log


def _cut_tail(db, keep: int) -> None:
    """What an intruder does: delete the last events and move the head back to match."""
    with db.session() as s:
        s.execute(AuditEvent.__table__.delete().where(AuditEvent.seq > keep))
        h = s.scalar(text("SELECT hash FROM audit_events WHERE seq = :k"), {"k": keep})
        s.execute(text("UPDATE audit_head SET seq = :k, hash = :h WHERE id = 1"), {"k": keep, "h": h})


def _wipe(db) -> None:
    with db.session() as s:
        s.execute(text("DELETE FROM audit_events"))
        s.execute(text("DELETE FROM audit_head"))


@pytest.fixture(autouse=True)
def _no_checkpointer(db):
    yield
    set_checkpointer(db, None)


def test_verify_reports_the_head(db):
    log = _fill(db, 3)
    res = log.verify()
    seq, digest = log.head()
    assert res.ok and res.head_seq == 3 and res.head_hash == digest
    assert res.to_dict()["head"] == f"3:{digest}" and parse_head(res.head) == ExpectedHead(3, digest)


def test_tail_deletion_with_the_head_moved_back_fails_against_a_kept_head(db):
    log = _fill(db, 6)
    kept = parse_head(log.verify().head)
    _cut_tail(db, 4)
    assert log.verify().ok  # the chain alone cannot tell: this is why heads are kept elsewhere
    res = log.verify([kept])
    assert not res.ok and res.problem == "truncated" and res.first_bad_seq == 5
    assert "ends at event #4" in res.message and "#6" in res.message


def test_a_wiped_log_fails_against_a_kept_head(db):
    log = _fill(db, 3)
    kept = parse_head(log.verify().head)
    _wipe(db)
    assert log.verify().ok and log.verify().head_seq == 0
    res = log.verify([kept])
    assert not res.ok and res.problem == "truncated" and "wiped" in res.message


def test_a_rewritten_and_rechained_log_diverges_from_a_kept_head(db):
    log = _fill(db, 5)
    kept = parse_head(log.verify().head)
    with db.session() as s:  # rewrite event 3 and re-chain everything after it
        rows = s.execute(text("SELECT seq, at, event_type, actor, data, prev_hash FROM audit_events "
                              "ORDER BY seq")).all()
        prev = None
        for seq, at, et, actor, data, prev_hash in rows:
            data = json.loads(data) if isinstance(data, str) else data
            if seq == 3:
                actor = "mallory"
            if prev is not None:
                prev_hash = prev
            from datetime import datetime
            at = datetime.fromisoformat(at) if isinstance(at, str) else at
            digest = event_hash(seq, at, et, actor, data, prev_hash)
            s.execute(text("UPDATE audit_events SET actor = :a, prev_hash = :p, hash = :h WHERE seq = :s"),
                      {"a": actor, "p": prev_hash, "h": digest, "s": seq})
            prev = digest
        s.execute(text("UPDATE audit_head SET hash = :h WHERE id = 1"), {"h": prev})
    assert log.verify().ok
    res = log.verify([kept])
    assert not res.ok and res.problem == "diverged" and res.first_bad_seq == 5


def test_parse_head_rejects_garbage():
    from consentry.review.audit import AuditError

    for bad in ("", "12", "12:abc", "x:" + "0" * 64, "1:" + "g" * 64):
        with pytest.raises(AuditError, match="SEQ:HASH"):
            parse_head(bad)


def test_checkpoint_signature_and_local_anchor(db, tmp_path):
    log = _fill(db, 4)
    cp = Checkpointer(db, tmp_path, every_events=0, every_seconds=0)
    doc = cp.checkpoint()
    assert (doc["seq"], doc["hash"]) == log.head()
    assert (tmp_path / "audit-checkpoint.key").stat().st_mode & 0o077 == 0
    assert verify_checkpoint(doc, cp.public_key()).seq == 4
    for field, value in (("seq", 3), ("hash", "0" * 64), ("at", "2000-01-01T00:00:00.000000Z")):
        with pytest.raises(CheckpointError, match="signature"):
            verify_checkpoint({**doc, field: value}, cp.public_key())
    other = Checkpointer(db, tmp_path / "other")
    forged = sign_checkpoint(other.key(), 4, doc["hash"])
    with pytest.raises(CheckpointError, match="another key"):
        verify_checkpoint(forged, cp.public_key())
    # registered: verify checks the latest local checkpoint without being told
    set_checkpointer(db, cp)
    assert log.verify().ok and log.verify().anchors[0]["seq"] == 4
    _cut_tail(db, 2)
    res = log.verify()
    assert not res.ok and res.problem == "truncated"
    _wipe(db)
    res = log.verify()
    assert not res.ok and res.problem == "truncated" and "wiped" in res.message
    # an edited checkpoint file is reported, not trusted
    line = json.loads(cp.path.read_text().splitlines()[-1])
    cp.path.write_text(json.dumps({**line, "seq": 0}) + "\n")
    res = log.verify()
    assert not res.ok and res.problem == "checkpoint"


def test_checkpoints_every_n_events(db, tmp_path):
    cp = Checkpointer(db, tmp_path, every_events=3, every_seconds=0)
    set_checkpointer(db, cp)
    _fill(db, 7)
    seqs = [json.loads(line)["seq"] for line in cp.path.read_text().splitlines()]
    assert seqs == [3, 6]


def test_checkpoints_after_an_interval(db, tmp_path):
    now = [1000.0]
    cp = Checkpointer(db, tmp_path, every_events=0, every_seconds=3600, clock=lambda: now[0])
    set_checkpointer(db, cp)
    _fill(db, 2)
    assert not cp.path.exists()
    now[0] += 3601
    _fill(db, 1)
    assert [json.loads(x)["reason"] for x in cp.path.read_text().splitlines()] == ["interval"]


def test_checkpoint_is_delivered_to_a_webhook_sink(db, tmp_path, monkeypatch):
    monkeypatch.setenv("TEST_CHECKPOINT_SECRET", "a shared webhook secret")
    received = []

    def handler(request: httpx.Request) -> httpx.Response:
        received.append(request)
        return httpx.Response(204)

    sinks = {"auditor": Sink("auditor", "https://auditor.example/hook", "TEST_CHECKPOINT_SECRET")}
    d = WebhookDispatcher(db, lambda: sinks, client=httpx.Client(transport=httpx.MockTransport(handler)))
    try:
        log = _fill(db, 3)
        cp = Checkpointer(db, tmp_path, sinks=["auditor"], dispatcher=d, every_events=0, every_seconds=0)
        out = cp.checkpoint(deliver_now=True)
    finally:
        d.stop()
    assert out["deliveries"][0]["status"] == "delivered"
    (req,) = received
    body = req.content
    assert req.headers[EVENT_HEADER] == CHECKPOINT_EVENT
    assert verify_signature("a shared webhook secret", req.headers[SIGNATURE_HEADER], body)
    payload = json.loads(body)
    assert payload["type"] == "audit.checkpoint"
    head = verify_checkpoint(payload["data"], cp.public_key())
    assert (head.seq, head.hash) == log.head()
    # what the receiver kept is enough to catch a later wipe
    _wipe(db)
    assert log.verify([head]).problem == "truncated"


def test_cli_verify_expect_head_and_checkpoint(db, tmp_path, monkeypatch):
    from consentry.cli import app
    import consentry.config as config

    monkeypatch.setenv("DATABASE_URL", db.url)
    monkeypatch.setenv("CONSENTRY_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("CONSENTRY_AUDIT_CHECKPOINT_SINKS", raising=False)
    monkeypatch.setattr(config, "_settings", None)
    _fill(db, 5)
    runner = CliRunner()
    r = runner.invoke(app, ["audit", "verify"])
    assert r.exit_code == 0, r.output
    head = json.loads(r.stdout)["head"]
    assert f"head: {head}" in r.stderr
    assert runner.invoke(app, ["audit", "verify", "--expect-head", head]).exit_code == 0
    r = runner.invoke(app, ["audit", "verify", "--expect-head", "5:nothex"])
    assert r.exit_code == 2 and "SEQ:HASH" in r.stderr

    r = runner.invoke(app, ["audit", "checkpoint"])
    assert r.exit_code == 0, r.output
    doc_path = tmp_path / "received.json"
    doc_path.write_text(r.stdout)
    r = runner.invoke(app, ["audit", "checkpoint", "--public-key"])
    assert r.exit_code == 0 and r.stdout.startswith("ed25519:")

    _cut_tail(db, 3)
    for args in (["--expect-head", head], ["--checkpoint", str(doc_path), "--no-local-checkpoint"], []):
        r = runner.invoke(app, ["audit", "verify", *args])
        assert r.exit_code == 1, (args, r.output)
        assert '"problem": "truncated"' in r.stdout and "BROKEN at event #4" in r.stderr
    tampered = json.loads(doc_path.read_text())
    tampered["seq"] = 2
    doc_path.write_text(json.dumps(tampered))
    r = runner.invoke(app, ["audit", "verify", "--checkpoint", str(doc_path)])
    assert r.exit_code == 1 and "signature does not match" in r.stderr
