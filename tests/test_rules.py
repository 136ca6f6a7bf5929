"""Policy rules: validation errors, evaluation, reload, the match API's verdict and the CLI dry run."""

from __future__ import annotations

import json
import os
import time

import pytest
from typer.testing import CliRunner

from consentry.policy.rules import RuleContext, RuleSet, RulesError, RulesSource

M_NCII = {"bank": "hub", "bank_kind": "ncii", "entry_id": 1, "signal_type": "pdq", "distance": 4,
          "provenance": {"tags": ["victim-report"], "category": "ncii"}}
M_CUSTOM = {"bank": "mine", "bank_kind": "custom", "entry_id": 2, "signal_type": "md5", "distance": 0,
            "provenance": {"tags": []}}

RULES = """
version: 1
sinks:
  ts: {url: "http://127.0.0.1:9/hook", secret_env: TEST_SECRET, max_attempts: 2}
rules:
  - name: trusted-surface
    when: {surface: internal-test}
    actions: []
    stop: true
  - name: close-ncii
    description: close match on an NCII bank
    when: {match: {bank_kind: ncii, max_distance: 10, signal_type: [pdq, vpdq]}}
    actions: [block, {preserve: {retain_days: 30}}, {enqueue: {queue: urgent, priority: 90}}, {webhook: ts}]
  - name: far-ncii
    when: {match: {bank_kind: ncii, min_distance: 11}}
    actions: [{enqueue: {queue: check, priority: 20}}]
  - name: repeat-uploader
    when: {uploader_id: [u-42], matched: true}
    actions: [{webhook: {sink: ts}}]
  - name: proven-ai
    when:
      evidence: {claim: ai_generated, min_strength: strong}
      not: {verdict: no_indicators}
    actions: [{enqueue: ai}]
  - name: tagged
    when: {any: [{match: {tags: victim-report}}, {match: {category: reported}}]}
    actions: [{enqueue: {queue: victim, priority: 70}}]
"""


@pytest.fixture
def rs():
    return RuleSet.from_yaml(RULES, "test.yaml")


def test_close_ncii_match_blocks_preserves_enqueues_and_notifies(rs):
    d = rs.evaluate(RuleContext([M_NCII], uploader_id="u-42"))
    assert d.decision == "block" and d.block
    assert d.fired == ["close-ncii", "repeat-uploader", "tagged"]
    assert [(e.queue, e.priority) for e in d.enqueue] == [("urgent", 90), ("victim", 70)]
    assert [w.sink for w in d.webhooks] == ["ts"]  # one per sink, even when two rules name it
    assert d.preserve and d.retain_days == 30
    assert d.verdict()["reasons"][0] == "close match on an NCII bank"


def test_distance_surface_and_evidence_conditions(rs):
    far = dict(M_NCII, distance=20, provenance={})
    d = rs.evaluate(RuleContext([far]))
    assert d.fired == ["far-ncii"] and d.decision == "review" and not d.block
    assert rs.evaluate(RuleContext([M_NCII], surface="internal-test")).fired == ["trusted-surface"]
    ai = {"verdict": "ai_generated", "evidence": [{"claim": "ai_generated", "strength": "proof", "source": "c2pa"}]}
    d = rs.evaluate(RuleContext(assessment=ai))
    assert d.fired == ["proven-ai"] and d.decision == "review" and d.enqueue[0].queue == "ai"
    weak = {"verdict": "ai_generated", "evidence": [{"claim": "ai_generated", "strength": "weak"}]}
    assert rs.evaluate(RuleContext(assessment=weak)).fired == []
    assert rs.evaluate(RuleContext(assessment={**ai, "verdict": "no_indicators"})).fired == []
    assert rs.evaluate(RuleContext()).decision == "no_match"
    # matched, but no rule acted: conservative "review"
    d = rs.evaluate(RuleContext([M_CUSTOM]))
    assert d.fired == [] and d.decision == "review"


def test_default_rules_keep_the_old_verdicts():
    rs = RuleSet.default()
    assert rs.evaluate(RuleContext([M_NCII])).decision == "block"
    assert rs.evaluate(RuleContext([M_CUSTOM])).decision == "review"
    assert rs.evaluate(RuleContext(allowed_by=[dict(M_CUSTOM, bank_kind="allow")])).decision == "allow"
    assert rs.evaluate(RuleContext()).decision == "no_match"


@pytest.mark.parametrize("text,needle", [
    ("rules: [{name: a, when: {match: {bnak: x}}}]", "rule 'a' (#1): when.match: unknown key 'bnak'"),
    ("rules: [{name: a}, {name: b, when: {match: {max_distance: far}}}]", "rule 'b' (#2): when.match.max_distance"),
    ("rules: [{name: a, actions: [{webhook: nowhere}]}]", "rule 'a' (#1): actions[0].webhook: no sink named 'nowhere'"),
    ("rules: [{name: a, actions: [{enqueue: {queue: q, priority: 500}}]}]", "actions[0].enqueue.priority"),
    ("rules: [{name: a, actions: [explode]}]", "actions[0]: unknown action 'explode'"),
    ("rules: [{name: a}, {name: a}]", "rule 'a' (#2): the name is used by an earlier rule"),
    ("rules: [{name: a, when: {evidence: {strength: huge}}}]", "when.evidence.strength: unknown strength 'huge'"),
    ("rules: [{name: a, stop: maybe}]", "rule 'a' (#1): stop: expected true or false"),
    ("rules: [{actions: [block]}]", "rule #1: name"),
    ("rules: [{name: a, actions: [block, allow]}]", "cannot both block and allow"),
    ("sinks: {s: {url: 'ftp://x', secret_env: S}}\nrules: []", "sink 's'.url"),
    ("rulez: []", "unknown top-level key 'rulez'"),
    ("rules: [name: a\n  - b", "not valid YAML at line"),
    ("- just a list", "expected a mapping"),
])
def test_validation_errors_name_the_rule_and_field(text, needle):
    with pytest.raises(RulesError) as exc:
        RuleSet.from_yaml(text, "bad.yaml")
    assert needle in str(exc.value) and str(exc.value).startswith("bad.yaml")


def test_yaml_is_loaded_safely():
    with pytest.raises(RulesError):
        RuleSet.from_yaml("rules: !!python/object/apply:os.system ['true']")


def test_reloads_when_the_file_changes_and_keeps_the_last_good_rules(tmp_path):
    path = tmp_path / "rules.yaml"
    path.write_text("rules: [{name: one, when: {matched: true}, actions: [block]}]")
    src = RulesSource(path, check_seconds=0)
    assert [r.name for r in src.current().rules] == ["one"]
    path.write_text("rules: [{name: two, when: {matched: true}, actions: [{enqueue: q}]}]")
    os.utime(path, ns=(time.time_ns(), time.time_ns() + 5_000_000_000))
    assert [r.name for r in src.current().rules] == ["two"]
    path.write_text("rules: [{name: broken, when: {nope: 1}}]")
    os.utime(path, ns=(time.time_ns(), time.time_ns() + 10_000_000_000))
    assert [r.name for r in src.current().rules] == ["two"] and "unknown condition 'nope'" in src.last_error


def test_match_api_verdict_comes_from_the_rules_file(db, tmp_path):
    from fastapi.testclient import TestClient

    from consentry.banks.service import BankService
    from consentry.config import Settings
    from consentry.keys import KeyStore
    from consentry.web.app import create_app

    md5 = "d41d8cd98f00b204e9800998ecf8427e"
    BankService(db).create_bank("mine", "custom")
    BankService(db).add_entry("mine", "md5", md5)
    rules = tmp_path / "rules.yaml"
    rules.write_text("rules:\n  - {name: mine-from-u1, description: known uploader, "
                     "when: {match: {bank: mine}, uploader_id: u1}, actions: [block]}\n")
    key, _ = KeyStore(db).create("matcher")
    app = create_app(Settings(home=tmp_path, rules_path=rules), db, background=False)
    h = {"Authorization": f"Bearer {key}"}
    with TestClient(app) as client:
        v = client.get("/v1/match", params={"signal_type": "md5", "value": md5, "uploader_id": "u1"}, headers=h).json()
        assert v["verdict"] == {"decision": "block", "block": True, "rules": ["mine-from-u1"],
                                "reasons": ["known uploader", "matched custom bank 'mine'"]}
        v = client.get("/v1/match", params={"signal_type": "md5", "value": md5, "uploader_id": "u2"}, headers=h).json()
        assert v["verdict"]["decision"] == "review" and v["verdict"]["rules"] == []
        assert "/v1/match" in client.get("/openapi.json").json()["paths"]
    app.state.consentry.match_log.close()


def test_cli_rules_check_and_test(tmp_path):
    from consentry.cli import app

    runner = CliRunner()
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    r = runner.invoke(app, ["rules", "check", str(rules)])
    assert r.exit_code == 0 and "close-ncii: block, preserve, enqueue:urgent, webhook:ts" in r.stdout
    sample = tmp_path / "sample.json"
    sample.write_text(json.dumps({"matches": [M_NCII], "context": {"uploader_id": "u-42"}}))
    r = runner.invoke(app, ["rules", "test", str(rules), "--input", str(sample)])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["decision"] == "block" and out["rules"] == ["close-ncii", "repeat-uploader", "tagged"]
    assert {"type": "webhook", "sink": "ts", "rule": "close-ncii"} in out["actions"]
    bad = tmp_path / "bad.yaml"
    bad.write_text("rules: [{name: x, when: {match: {bnak: 1}}}]")
    r = runner.invoke(app, ["rules", "check", str(bad)])
    assert r.exit_code == 1 and "rule 'x' (#1): when.match: unknown key 'bnak'" in r.output
    assert "Traceback" not in r.output
    sample.write_text("{not json")
    r = runner.invoke(app, ["rules", "test", str(rules), "--input", str(sample)])
    assert r.exit_code == 1 and "not valid JSON" in r.output
