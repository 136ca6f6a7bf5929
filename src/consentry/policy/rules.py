"""Declarative rules: conditions over matches, evidence and request context → actions.

A rules file is YAML (read with ``yaml.safe_load``, at most :data:`MAX_RULES_BYTES`)::

    version: 1
    sinks:                       # named webhook sinks (optional)
      trust-safety:
        url: https://hooks.example.org/consentry
        secret_env: CONSENTRY_WEBHOOK_SECRET_TS
    rules:
      - name: block-known-abuse
        when:
          match: {bank_kind: [csam, ncii, ai-abuse, terror]}
        actions: [block, preserve, {enqueue: {queue: urgent, priority: 90}}, {webhook: trust-safety}]
        stop: true

Rules are tried in order; every rule whose condition holds *fires* and adds its actions; a rule
with ``stop: true`` ends the evaluation when it fires. See ``docs/rules.md`` for the full
condition and action vocabulary. Errors name the rule and the field (``rule 'x' (#2): when.match:
unknown key 'bnak'``).
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import yaml

from consentry.errors import ConsentryError

MAX_RULES_BYTES = 1024 * 1024
MAX_RULES = 1000
DEFAULT_RULES_PATH = Path(__file__).with_name("default_rules.yaml")
STRENGTHS = ("weak", "strong", "proof")
DECISIONS = ("block", "review", "allow", "no_match")
SURFACE_KEYS = ("uploader_id", "surface")


class RulesError(ConsentryError):
    """A rules file that does not load or validate; the message names the rule and field."""

    code = "rules_error"


# ---------------------------------------------------------------------------- context


@dataclass
class RuleContext:
    """What a rule can look at: matches as the API returns them, an optional assessment and the
    request context."""

    matches: list[dict[str, Any]] = field(default_factory=list)
    allowed_by: list[dict[str, Any]] = field(default_factory=list)
    assessment: dict[str, Any] | None = None  # {"verdict": ..., "evidence": [{claim, strength, source}]}
    uploader_id: str | None = None
    surface: str | None = None

    @classmethod
    def from_outcome(cls, outcome: dict[str, Any], *, assessment: dict[str, Any] | None = None,
                     uploader_id: str | None = None, surface: str | None = None) -> "RuleContext":
        """From a match response's ``matches`` and ``allowed_by`` (``MatchOutcome.to_dict()``)."""
        return cls(list(outcome["matches"]), list(outcome["allowed_by"]), assessment, uploader_id, surface)

    @classmethod
    def from_dict(cls, data: Any) -> "RuleContext":
        """A sample as written for ``consentry rules test``: a match response (``matches``,
        ``allowed_by``), an optional ``assessment`` and ``context: {uploader_id, surface}``."""
        if not isinstance(data, dict):
            raise RulesError("the sample must be a JSON object")
        ctx = data.get("context") or {}
        if not isinstance(ctx, dict):
            raise RulesError("sample: 'context' must be an object")

        def items(key: str) -> list[dict[str, Any]]:
            value = data.get(key) or []
            if not isinstance(value, list) or not all(isinstance(m, dict) for m in value):
                raise RulesError(f"sample: {key!r} must be a list of objects")
            return value

        assessment = data.get("assessment")
        if assessment is not None and not isinstance(assessment, dict):
            raise RulesError("sample: 'assessment' must be an object")
        pick = lambda k: ctx.get(k, data.get(k))  # noqa: E731
        return cls(items("matches"), items("allowed_by"), assessment,
                   None if pick("uploader_id") is None else str(pick("uploader_id")),
                   None if pick("surface") is None else str(pick("surface")))

    @property
    def evidence(self) -> list[dict[str, Any]]:
        ev = (self.assessment or {}).get("evidence") or []
        return [e for e in ev if isinstance(e, dict)]

    @property
    def verdict(self) -> str | None:
        v = (self.assessment or {}).get("verdict")
        if isinstance(v, dict):  # an Assessment.to_dict() may nest it
            v = v.get("label") or v.get("verdict")
        return None if v is None else str(v)


# ---------------------------------------------------------------------------- conditions

Predicate = Callable[[RuleContext], bool]


def _as_list(value: Any, where: str, kind: type = str) -> list[Any]:
    values = value if isinstance(value, list) else [value]
    if not values:
        raise RulesError(f"{where}: must not be empty")
    for v in values:
        if not isinstance(v, kind) or isinstance(v, bool):
            raise RulesError(f"{where}: expected {kind.__name__} or a list of them, got {v!r}")
    return values


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise RulesError(f"{where}: expected a number, got {value!r}")
    return float(value)


def _bool(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise RulesError(f"{where}: expected true or false, got {value!r}")
    return value


MATCH_KEYS = ("bank", "bank_kind", "signal_type", "max_distance", "min_distance", "tags", "category")
EVIDENCE_KEYS = ("claim", "strength", "min_strength", "source")


def _match_predicate(spec: Any, where: str) -> Callable[[dict[str, Any]], bool]:
    if not isinstance(spec, dict):
        raise RulesError(f"{where}: expected a mapping of {', '.join(MATCH_KEYS)}")
    tests: list[Callable[[dict[str, Any]], bool]] = []
    for key, value in spec.items():
        w = f"{where}.{key}"
        if key in ("bank", "bank_kind", "signal_type", "category"):
            allowed = set(_as_list(value, w))
            tests.append(lambda m, k=key, a=allowed: m.get(k) in a)
        elif key == "max_distance":
            limit = _number(value, w)
            tests.append(lambda m, x=limit: isinstance(m.get("distance"), (int, float)) and m["distance"] <= x)
        elif key == "min_distance":
            limit = _number(value, w)
            tests.append(lambda m, x=limit: isinstance(m.get("distance"), (int, float)) and m["distance"] >= x)
        elif key == "tags":
            wanted = set(_as_list(value, w))
            tests.append(lambda m, t=wanted: bool(t & set((m.get("provenance") or {}).get("tags") or [])))
        else:
            raise RulesError(f"{where}: unknown key {key!r} (use {', '.join(MATCH_KEYS)})")
    def one(m: dict[str, Any]) -> bool:  # API matches keep the category in their provenance
        view = dict(m)
        if "category" not in view:
            view["category"] = (m.get("provenance") or {}).get("category")
        return all(t(view) for t in tests)

    return one


def _evidence_predicate(spec: Any, where: str) -> Callable[[dict[str, Any]], bool]:
    if not isinstance(spec, dict):
        raise RulesError(f"{where}: expected a mapping of {', '.join(EVIDENCE_KEYS)}")
    tests: list[Callable[[dict[str, Any]], bool]] = []
    for key, value in spec.items():
        w = f"{where}.{key}"
        if key in ("claim", "source"):
            allowed = set(_as_list(value, w))
            tests.append(lambda e, k=key, a=allowed: e.get(k) in a)
        elif key == "strength":
            allowed = set(_as_list(value, w))
            bad = allowed - set(STRENGTHS)
            if bad:
                raise RulesError(f"{w}: unknown strength {sorted(bad)[0]!r} (use {', '.join(STRENGTHS)})")
            tests.append(lambda e, a=allowed: e.get("strength") in a)
        elif key == "min_strength":
            if value not in STRENGTHS:
                raise RulesError(f"{w}: expected one of {', '.join(STRENGTHS)}, got {value!r}")
            rank = STRENGTHS.index(value)
            tests.append(lambda e, r=rank: e.get("strength") in STRENGTHS and STRENGTHS.index(e["strength"]) >= r)
        else:
            raise RulesError(f"{where}: unknown key {key!r} (use {', '.join(EVIDENCE_KEYS)})")
    return lambda e: all(t(e) for t in tests)


CONDITION_KEYS = ("matched", "allowed", "match", "evidence", "verdict", "uploader_id", "surface",
                  "all", "any", "not")


def compile_condition(spec: Any, where: str) -> Predicate:
    """A predicate for one ``when`` mapping; all its keys must hold (AND)."""
    if spec is None:
        return lambda ctx: True
    if not isinstance(spec, dict):
        raise RulesError(f"{where}: expected a mapping of conditions ({', '.join(CONDITION_KEYS)})")
    parts: list[Predicate] = []
    for key, value in spec.items():
        w = f"{where}.{key}"
        if key == "matched":
            want = _bool(value, w)
            parts.append(lambda ctx, v=want: bool(ctx.matches) == v)
        elif key == "allowed":
            want = _bool(value, w)
            parts.append(lambda ctx, v=want: bool(ctx.allowed_by) == v)
        elif key == "match":
            pm = _match_predicate(value, w)
            parts.append(lambda ctx, p=pm: any(p(m) for m in ctx.matches))
        elif key == "evidence":
            pe = _evidence_predicate(value, w)
            parts.append(lambda ctx, p=pe: any(p(e) for e in ctx.evidence))
        elif key == "verdict":
            allowed = set(_as_list(value, w))
            parts.append(lambda ctx, a=allowed: ctx.verdict in a)
        elif key in SURFACE_KEYS:
            allowed = {str(v) for v in _as_list(value, w, object)}
            parts.append(lambda ctx, k=key, a=allowed: getattr(ctx, k) in a)
        elif key in ("all", "any"):
            if not isinstance(value, list) or not value:
                raise RulesError(f"{w}: expected a non-empty list of conditions")
            subs = [compile_condition(v, f"{w}[{i}]") for i, v in enumerate(value)]
            combine = all if key == "all" else any
            parts.append(lambda ctx, s=subs, c=combine: c(p(ctx) for p in s))
        elif key == "not":
            sub = compile_condition(value, w)
            parts.append(lambda ctx, p=sub: not p(ctx))
        else:
            raise RulesError(f"{where}: unknown condition {key!r} (use {', '.join(CONDITION_KEYS)})")
    return lambda ctx: all(p(ctx) for p in parts)


# ---------------------------------------------------------------------------- actions


@dataclass(frozen=True)
class Enqueue:
    queue: str
    priority: int
    rule: str

    def to_dict(self) -> dict[str, Any]:
        return {"type": "enqueue", "queue": self.queue, "priority": self.priority, "rule": self.rule}


@dataclass(frozen=True)
class WebhookAction:
    sink: str
    rule: str

    def to_dict(self) -> dict[str, Any]:
        return {"type": "webhook", "sink": self.sink, "rule": self.rule}


@dataclass(frozen=True)
class Action:
    """One parsed action: ``block``, ``allow``, ``preserve``, ``enqueue`` or ``webhook``."""

    type: str
    queue: str | None = None
    priority: int = 0
    sink: str | None = None
    retain_days: int | None = None


ACTION_TYPES = ("block", "allow", "preserve", "enqueue", "webhook")
_QUEUE_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.")


def _parse_action(item: Any, where: str) -> Action:
    if isinstance(item, str):
        if item in ("block", "allow", "preserve"):
            return Action(item)
        if item == "enqueue":
            return Action("enqueue", queue="default", priority=50)
        raise RulesError(f"{where}: unknown action {item!r} (use {', '.join(ACTION_TYPES)})")
    if not isinstance(item, dict) or len(item) != 1:
        raise RulesError(f"{where}: an action is a name or a one-key mapping, e.g. {{webhook: sink-name}}")
    (kind, arg), = item.items()
    w = f"{where}.{kind}"
    if kind == "enqueue":
        arg = arg or {}
        if isinstance(arg, str):
            arg = {"queue": arg}
        if not isinstance(arg, dict):
            raise RulesError(f"{w}: expected {{queue: NAME, priority: 0-100}}")
        unknown = set(arg) - {"queue", "priority"}
        if unknown:
            raise RulesError(f"{w}: unknown key {sorted(unknown)[0]!r} (use queue, priority)")
        queue = arg.get("queue", "default")
        if not isinstance(queue, str) or not queue or len(queue) > 64 or set(queue) - _QUEUE_CHARS:
            raise RulesError(f"{w}.queue: a name of 1-64 letters, digits, '-', '_', '.', got {queue!r}")
        priority = arg.get("priority", 50)
        if isinstance(priority, bool) or not isinstance(priority, int) or not 0 <= priority <= 100:
            raise RulesError(f"{w}.priority: an integer from 0 to 100, got {priority!r}")
        return Action("enqueue", queue=queue, priority=priority)
    if kind == "webhook":
        sink = arg.get("sink") if isinstance(arg, dict) else arg
        if not isinstance(sink, str) or not sink:
            raise RulesError(f"{w}: expected a sink name")
        return Action("webhook", sink=sink)
    if kind == "preserve":
        arg = arg or {}
        if not isinstance(arg, dict) or set(arg) - {"retain_days"}:
            raise RulesError(f"{w}: expected {{retain_days: N}}")
        days = arg.get("retain_days")
        if days is not None and (isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= 36500):
            raise RulesError(f"{w}.retain_days: an integer from 1 to 36500, got {days!r}")
        return Action("preserve", retain_days=days)
    if kind in ("block", "allow"):
        return Action(kind)
    raise RulesError(f"{where}: unknown action {kind!r} (use {', '.join(ACTION_TYPES)})")


# ---------------------------------------------------------------------------- rules


@dataclass(frozen=True)
class Sink:
    """A named webhook destination; the secret is read from ``secret_env`` when sending."""

    name: str
    url: str
    secret_env: str
    timeout_s: float = 5.0
    max_attempts: int = 6
    backoff_s: float = 2.0  # first retry after this, doubling each time
    max_backoff_s: float = 3600.0

    def secret(self) -> str | None:
        return os.environ.get(self.secret_env) or None


SINK_KEYS = ("url", "secret_env", "timeout_s", "max_attempts", "backoff_s", "max_backoff_s")


def _parse_sink(name: Any, spec: Any) -> Sink:
    where = f"sink {name!r}"
    if not isinstance(name, str) or not name or len(name) > 100 or set(name) - _QUEUE_CHARS:
        raise RulesError(f"{where}: a sink name is 1-100 letters, digits, '-', '_', '.'")
    if not isinstance(spec, dict):
        raise RulesError(f"{where}: expected a mapping of {', '.join(SINK_KEYS)}")
    unknown = set(spec) - set(SINK_KEYS)
    if unknown:
        raise RulesError(f"{where}: unknown key {sorted(unknown)[0]!r} (use {', '.join(SINK_KEYS)})")
    url = spec.get("url")
    if not isinstance(url, str) or not url.startswith(("http://", "https://")) or len(url) > 2000:
        raise RulesError(f"{where}.url: an http:// or https:// URL, got {url!r}")
    secret_env = spec.get("secret_env")
    if not isinstance(secret_env, str) or not secret_env:
        raise RulesError(f"{where}.secret_env: the name of the environment variable holding the secret")
    kw: dict[str, Any] = {}
    for key, lo, hi in (("timeout_s", 0.05, 120), ("backoff_s", 0.0, 86400), ("max_backoff_s", 0.0, 7 * 86400)):
        if key in spec:
            v = _number(spec[key], f"{where}.{key}")
            if not lo <= v <= hi:
                raise RulesError(f"{where}.{key}: must be between {lo} and {hi}")
            kw[key] = v
    if "max_attempts" in spec:
        v = spec["max_attempts"]
        if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= 50:
            raise RulesError(f"{where}.max_attempts: an integer from 1 to 50, got {v!r}")
        kw["max_attempts"] = v
    return Sink(name, url, secret_env, **kw)


RULE_KEYS = ("name", "description", "when", "actions", "stop", "enabled")


@dataclass(frozen=True)
class Rule:
    name: str
    description: str
    actions: tuple[Action, ...]
    stop: bool
    enabled: bool
    condition: Predicate = field(repr=False, compare=False)

    def matches(self, ctx: RuleContext) -> bool:
        return self.enabled and self.condition(ctx)


@dataclass
class Decision:
    """What the rules decided for one context."""

    decision: str
    block: bool
    reasons: list[str]
    fired: list[str]
    enqueue: list[Enqueue] = field(default_factory=list)
    webhooks: list[WebhookAction] = field(default_factory=list)
    preserve: bool = False
    retain_days: int | None = None

    @property
    def actions(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = [{"type": "block"}] if self.block else []
        out += [e.to_dict() for e in self.enqueue] + [w.to_dict() for w in self.webhooks]
        if self.preserve:
            out.append({"type": "preserve", "retain_days": self.retain_days})
        return out

    def verdict(self) -> dict[str, Any]:
        """The ``verdict`` object of the match response (``rules`` names the rules that fired)."""
        return {"decision": self.decision, "block": self.block, "reasons": self.reasons[:10],
                "rules": list(self.fired)}

    def to_dict(self) -> dict[str, Any]:
        return {**self.verdict(), "actions": self.actions}


def _summary(ctx: RuleContext) -> list[str]:
    out = sorted({f"matched {m.get('bank_kind', '?')} bank {m.get('bank')!r}" for m in ctx.matches})
    return out[:5]


DECISION_KINDS = ("confirm", "dismiss", "escalate")


@dataclass
class RuleSet:
    rules: list[Rule]
    sinks: dict[str, Sink] = field(default_factory=dict)
    source: str = "<memory>"
    #: review decisions -> webhook sinks notified when such a decision takes effect
    #: (``decisions: {confirm: [{webhook: SINK}], ...}`` in the rules file)
    decision_sinks: dict[str, list[str]] = field(default_factory=dict)

    @classmethod
    def from_yaml(cls, text: str, source: str = "<memory>") -> "RuleSet":
        if len(text.encode("utf-8", "replace")) > MAX_RULES_BYTES:
            raise RulesError(f"{source}: the rules file is over {MAX_RULES_BYTES} bytes")
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            problem = getattr(exc, "problem", None) or "invalid YAML"
            raise RulesError(f"{source}: not valid YAML{where}: {problem}") from None
        try:
            return cls.from_dict(data, source)
        except RecursionError:
            raise RulesError(f"{source}: conditions are nested too deeply") from None

    @classmethod
    def from_file(cls, path: str | os.PathLike) -> "RuleSet":
        p = Path(path)
        try:
            size = p.stat().st_size
            if size > MAX_RULES_BYTES:
                raise RulesError(f"{p}: the rules file is over {MAX_RULES_BYTES} bytes")
            text_ = p.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise RulesError(f"{p}: no such rules file") from None
        except UnicodeDecodeError:
            raise RulesError(f"{p}: the rules file is not UTF-8 text") from None
        except OSError as exc:
            raise RulesError(f"{p}: cannot read the rules file ({exc.strerror})") from None
        return cls.from_yaml(text_, str(p))

    @classmethod
    def default(cls) -> "RuleSet":
        return cls.from_file(DEFAULT_RULES_PATH)

    @classmethod
    def from_dict(cls, data: Any, source: str = "<memory>") -> "RuleSet":
        if not isinstance(data, dict):
            raise RulesError(f"{source}: expected a mapping with 'rules' (and optionally 'version', 'sinks')")
        unknown = set(data) - {"version", "rules", "sinks", "decisions"}
        if unknown:
            raise RulesError(f"{source}: unknown top-level key {sorted(unknown, key=str)[0]!r} "
                             "(use version, sinks, rules, decisions)")
        if data.get("version", 1) != 1:
            raise RulesError(f"{source}: version must be 1")
        sinks_spec = data.get("sinks") or {}
        if not isinstance(sinks_spec, dict):
            raise RulesError(f"{source}: 'sinks' must be a mapping of name -> sink")
        try:
            sinks = {name: _parse_sink(name, spec) for name, spec in sinks_spec.items()}
        except RulesError as exc:
            raise RulesError(f"{source}: {exc}") from None
        rules_spec = data.get("rules")
        if not isinstance(rules_spec, list):
            raise RulesError(f"{source}: 'rules' must be a list of rules")
        if len(rules_spec) > MAX_RULES:
            raise RulesError(f"{source}: more than {MAX_RULES} rules")
        rules: list[Rule] = []
        seen: set[str] = set()
        for i, spec in enumerate(rules_spec, 1):
            label = f"rule #{i}"
            if isinstance(spec, dict) and isinstance(spec.get("name"), str):
                label = f"rule {spec['name']!r} (#{i})"
            try:
                rule = _parse_rule(spec, sinks)
            except RulesError as exc:
                raise RulesError(f"{source}: {label}: {exc}") from None
            if rule.name in seen:
                raise RulesError(f"{source}: {label}: the name is used by an earlier rule")
            seen.add(rule.name)
            rules.append(rule)
        try:
            decision_sinks = _parse_decisions(data.get("decisions"), sinks)
        except RulesError as exc:
            raise RulesError(f"{source}: decisions: {exc}") from None
        return cls(rules, sinks, source, decision_sinks)

    def evaluate(self, ctx: RuleContext) -> Decision:
        fired: list[str] = []
        reasons: list[str] = []
        block = allow = False
        enqueue: list[Enqueue] = []
        webhooks: list[WebhookAction] = []
        preserve, retain_days = False, None
        for rule in self.rules:
            if not rule.matches(ctx):
                continue
            fired.append(rule.name)
            reasons.append(rule.description or f"rule {rule.name!r}")
            for a in rule.actions:
                if a.type == "block":
                    block = True
                elif a.type == "allow":
                    allow = True
                elif a.type == "enqueue":
                    if not any(e.queue == a.queue for e in enqueue):
                        enqueue.append(Enqueue(a.queue or "default", a.priority, rule.name))
                elif a.type == "webhook":
                    if not any(w.sink == a.sink for w in webhooks):
                        webhooks.append(WebhookAction(a.sink or "", rule.name))
                elif a.type == "preserve":
                    preserve = True
                    if a.retain_days is not None:
                        retain_days = max(retain_days or 0, a.retain_days)
            if rule.stop:
                break
        if block:
            decision = "block"
        elif enqueue:
            decision = "review"
        elif allow or ctx.allowed_by:
            decision = "allow"
        elif not ctx.matches:
            decision = "no_match"
        else:  # matched, yet no rule said what to do: a person should look
            decision = "review"
            reasons.append("matched, and no rule decided: review")
        if ctx.allowed_by and not ctx.matches:
            reasons += [f"on allow bank {m.get('bank')!r}" for m in ctx.allowed_by[:3]]
        reasons += [r for r in _summary(ctx) if r not in reasons]
        return Decision(decision, block, reasons, fired, enqueue, webhooks, preserve, retain_days)


def _parse_decisions(spec: Any, sinks: dict[str, Sink]) -> dict[str, list[str]]:
    """``{confirm|dismiss|escalate: [{webhook: SINK}, ...]}``: who hears of review decisions."""
    if spec is None:
        return {}
    if not isinstance(spec, dict):
        raise RulesError("must be a mapping of decision (confirm, dismiss, escalate) -> actions")
    out: dict[str, list[str]] = {}
    for kind, actions in spec.items():
        if kind not in DECISION_KINDS:
            raise RulesError(f"unknown decision {kind!r} (use {', '.join(DECISION_KINDS)})")
        if not isinstance(actions, list):
            raise RulesError(f"{kind}: expected a list of actions")
        names: list[str] = []
        for i, a in enumerate(actions):
            if not (isinstance(a, dict) and set(a) == {"webhook"} and isinstance(a["webhook"], str)):
                raise RulesError(f"{kind}[{i}]: only {{webhook: SINK}} actions run on decisions")
            if a["webhook"] not in sinks:
                known = ", ".join(sorted(sinks)) or "none defined"
                raise RulesError(f"{kind}[{i}].webhook: no sink named {a['webhook']!r} (sinks: {known})")
            if a["webhook"] not in names:
                names.append(a["webhook"])
        out[kind] = names
    return out


def _parse_rule(spec: Any, sinks: dict[str, Sink]) -> Rule:
    if not isinstance(spec, dict):
        raise RulesError(f"expected a mapping with {', '.join(RULE_KEYS)}")
    unknown = set(spec) - set(RULE_KEYS)
    if unknown:
        raise RulesError(f"unknown key {sorted(unknown, key=str)[0]!r} (use {', '.join(RULE_KEYS)})")
    name = spec.get("name")
    if not isinstance(name, str) or not name or len(name) > 100 or set(name) - _QUEUE_CHARS:
        raise RulesError("name: 1-100 letters, digits, '-', '_', '.'")
    description = spec.get("description", "")
    if not isinstance(description, str) or len(description) > 500:
        raise RulesError("description: text of at most 500 characters")
    condition = compile_condition(spec.get("when"), "when")
    actions_spec = spec.get("actions", [])
    if not isinstance(actions_spec, list):
        raise RulesError("actions: expected a list")
    actions = tuple(_parse_action(a, f"actions[{i}]") for i, a in enumerate(actions_spec))
    for i, a in enumerate(actions):
        if a.type == "webhook" and a.sink not in sinks:
            known = ", ".join(sorted(sinks)) or "none defined"
            raise RulesError(f"actions[{i}].webhook: no sink named {a.sink!r} (sinks: {known})")
    types = {a.type for a in actions}
    if "block" in types and "allow" in types:
        raise RulesError("actions: a rule cannot both block and allow")
    stop = _bool(spec.get("stop", False), "stop")
    enabled = _bool(spec.get("enabled", True), "enabled")
    return Rule(name, description.strip(), actions, stop, enabled, condition)


# ---------------------------------------------------------------------------- reloading


class RulesSource:
    """A RuleSet read from a file and re-read when the file's mtime or size changes.

    ``current()`` costs one ``stat`` per call (at most every ``check_seconds``). A file that stops
    validating keeps the last good RuleSet in force and the error is kept in ``last_error``.
    """

    def __init__(self, path: str | os.PathLike | None = None, check_seconds: float = 1.0,
                 on_reload: Callable[["RuleSet"], None] | None = None):
        self.path = Path(path) if path else DEFAULT_RULES_PATH
        self.check_seconds = check_seconds
        self.on_reload = on_reload
        self.last_error: str | None = None
        self._lock = threading.Lock()
        self._stamp = self._stat()
        self._ruleset = RuleSet.from_file(self.path)  # the first load must succeed
        self._checked = _monotonic()

    def _stat(self) -> tuple[int, int] | None:
        try:
            st = self.path.stat()
            return (st.st_mtime_ns, st.st_size)
        except OSError:
            return None

    def current(self) -> RuleSet:
        now = _monotonic()
        if now - self._checked < self.check_seconds:
            return self._ruleset
        with self._lock:
            self._checked = now
            stamp = self._stat()
            if stamp != self._stamp:
                self._stamp = stamp
                try:
                    self._ruleset = RuleSet.from_file(self.path)
                    self.last_error = None
                    if self.on_reload:
                        self.on_reload(self._ruleset)
                except RulesError as exc:
                    self.last_error = str(exc)
                    import logging

                    logging.getLogger("consentry.policy").error("rules not reloaded: %s", exc)
            return self._ruleset


def _monotonic() -> float:
    import time

    return time.monotonic()

