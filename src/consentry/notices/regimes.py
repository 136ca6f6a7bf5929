"""Notice regimes: which fields a valid notice needs, and the clock it starts.

- ``take_it_down`` (47 U.S.C. § 223a, TAKE IT DOWN Act): a physical or electronic
  ``signature``; ``locations`` — identification of, and information sufficient to locate, the
  depiction (URLs or the platform's content ids); ``good_faith`` — a brief statement that the
  identifiable individual has a good-faith belief the depiction is not consensual; contact
  information (``notifier_email`` or ``notifier_contact``). Clock: 48 hours.
- ``dsa_art16`` (Regulation (EU) 2022/2065, Art. 16(2)): a substantiated ``explanation`` of why
  the content is illegal; the exact electronic ``locations``; the notifier's ``notifier_name`` and
  ``notifier_email`` — *not* required when the notice concerns child sexual abuse material
  (category ``csam``, Art. 16(2)(c)); a bona fide statement (``good_faith``). The DSA says
  "timely"; the default clock here is 48 hours too, configurable.

Regimes are configured in ``<home>/notices.yaml`` (or ``CONSENTRY_NOTICES_PATH``)::

    regimes:
      take_it_down: {hours: 48, calendar: continuous, tz: America/New_York, escalate_before_hours: 12}
      dsa_art16: {hours: 16, calendar: business, tz: Europe/Brussels, day_start: "09:00", day_end: "17:00"}
    bank: notices            # where a removal decision adds the hashes (created as an ncii bank)
    queue: notices
    priority: 90
    form_per_hour: 10        # notices from one address through /report
    api_per_hour: 600        # notices from one API key
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from consentry.notices.clock import ClockError, ClockSpec, parse_time

CATEGORIES = ("ncii", "deepfake", "csam", "other")
CONTACT = "contact"  # the pseudo-field "an email address or other contact"


@dataclass(frozen=True)
class Regime:
    name: str
    title: str
    law: str
    required: tuple[str, ...]
    clock: ClockSpec

    def missing(self, fields: dict[str, Any]) -> list[str]:
        """The required fields this notice lacks, by name (``contact`` = email or other contact)."""
        out = []
        for name in self.required:
            if name == CONTACT:
                if not (fields.get("notifier_email") or fields.get("notifier_contact")):
                    out.append(CONTACT)
            elif name in ("notifier_name", "notifier_email") and fields.get("category") == "csam":
                continue  # DSA Art. 16(2)(c): not required for child sexual abuse material
            elif name == "good_faith":
                if fields.get("good_faith") is not True:
                    out.append(name)
            elif name == "locations":
                if not fields.get("locations") and not fields.get("image_sha256"):
                    out.append(name)
            elif not str(fields.get(name) or "").strip():
                out.append(name)
        return out


DEFAULT_REGIMES: dict[str, Regime] = {
    "take_it_down": Regime(
        "take_it_down", "TAKE IT DOWN Act removal request", "47 U.S.C. § 223a",
        ("signature", "locations", "good_faith", CONTACT),
        ClockSpec(hours=48, calendar="continuous", tz="America/New_York", escalate_before_hours=12)),
    "dsa_art16": Regime(
        "dsa_art16", "DSA Article 16 notice", "Regulation (EU) 2022/2065, Art. 16",
        ("explanation", "locations", "notifier_name", "notifier_email", "good_faith"),
        ClockSpec(hours=48, calendar="continuous", tz="Europe/Brussels", escalate_before_hours=12)),
}


@dataclass(frozen=True)
class NoticeConfig:
    regimes: dict[str, Regime] = field(default_factory=lambda: dict(DEFAULT_REGIMES))
    bank: str = "notices"
    queue: str = "notices"
    priority: int = 90
    form_per_hour: float = 10.0
    api_per_hour: float = 600.0
    platform_name: str = ""
    redress: str = ("You can ask us to review this decision by replying to this statement (internal "
                    "complaint-handling, DSA Art. 20), use a certified out-of-court dispute settlement body "
                    "(Art. 21), or go to court.")

    def regime(self, name: str) -> Regime:
        try:
            return self.regimes[name]
        except KeyError:
            raise ClockError(f"unknown regime {name!r} (use {', '.join(self.regimes)})") from None


def load_config(home: Path | None) -> NoticeConfig:
    """``CONSENTRY_NOTICES_PATH`` or ``<home>/notices.yaml`` when present, else the defaults."""
    path = os.environ.get("CONSENTRY_NOTICES_PATH")
    p = Path(path) if path else (Path(home) / "notices.yaml" if home else None)
    if p is None or not p.is_file():
        return NoticeConfig()
    data = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
    return config_from_dict(data, where=str(p))


def config_from_dict(data: dict[str, Any], where: str = "notices config") -> NoticeConfig:
    if not isinstance(data, dict):
        raise ClockError(f"{where}: expected a mapping")
    regimes = dict(DEFAULT_REGIMES)
    for name, spec in (data.get("regimes") or {}).items():
        if name not in regimes or not isinstance(spec, dict):
            raise ClockError(f"{where}: regimes.{name}: unknown regime or not a mapping")
        kw: dict[str, Any] = {}
        for k in ("hours", "escalate_before_hours"):
            if k in spec:
                kw[k] = float(spec[k])
        for k in ("calendar", "tz"):
            if k in spec:
                kw[k] = str(spec[k])
        for k in ("day_start", "day_end"):
            if k in spec:
                kw[k] = parse_time(spec[k])
        if "workdays" in spec:
            kw["workdays"] = tuple(int(d) for d in spec["workdays"])
        regimes[name] = replace(regimes[name], clock=replace(regimes[name].clock, **kw))
    base = NoticeConfig()
    return NoticeConfig(regimes=regimes, bank=str(data.get("bank", base.bank)),
                        queue=str(data.get("queue", base.queue)), priority=int(data.get("priority", base.priority)),
                        form_per_hour=float(data.get("form_per_hour", base.form_per_hour)),
                        api_per_hour=float(data.get("api_per_hour", base.api_per_hour)),
                        platform_name=str(data.get("platform_name", "")),
                        redress=str(data.get("redress", base.redress)))
