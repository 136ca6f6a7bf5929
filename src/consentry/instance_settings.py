"""Instance settings changed while running, stored in the database so every worker sees them.

``signal_types``: the signal types this instance computes and matches (e.g. no vPDQ on a
photo-only service). Stored in ``instance_settings``; when no value is stored, the
``CONSENTRY_SIGNAL_TYPES`` default applies (empty: all). A change appends a ``settings`` entry
to the change log, so every worker's matcher re-reads it on its next refresh (within
``CONSENTRY_INDEX_REFRESH_SECONDS``).
"""

from __future__ import annotations

from typing import Sequence

from sqlalchemy import select

from consentry.db.models import Change, InstanceSetting
from consentry.db.session import Database
from consentry.errors import ConsentryError

SIGNAL_TYPES = "signal_types"


class SettingsError(ConsentryError):
    code = "settings_error"


def known_signal_types() -> list[str]:
    from consentry.signals import signal_types

    return sorted(signal_types())


def validate_signal_types(names: Sequence[str]) -> list[str]:
    known = known_signal_types()
    out: list[str] = []
    for raw in names:
        name = str(raw).strip().lower()
        if not name:
            continue
        if name not in known:
            raise SettingsError(f"unknown signal type {raw!r} (known: {', '.join(known)})")
        if name not in out:
            out.append(name)
    return sorted(out)


def stored_signal_types(db: Database) -> list[str] | None:
    with db.session() as s:
        row = s.scalar(select(InstanceSetting).where(InstanceSetting.name == SIGNAL_TYPES))
        if row is None or not isinstance(row.value, list):
            return None
        return [str(v) for v in row.value]


def enabled_signal_types(db: Database, default: Sequence[str] | None = None) -> frozenset[str] | None:
    """The enabled signal types, or None when all are (nothing stored and no default)."""
    return _enabled(stored_signal_types(db), default)


def _enabled(stored: list[str] | None, default: Sequence[str] | None) -> frozenset[str] | None:
    if stored is not None:
        return frozenset(stored)
    if default:
        return frozenset(validate_signal_types(default))
    return None


def signal_types_view(db: Database, default: Sequence[str] | None = None) -> dict:
    stored = stored_signal_types(db)  # one read of the setting
    enabled = _enabled(stored, default)
    known = known_signal_types()
    return {
        "enabled": sorted(enabled) if enabled is not None else known,
        "disabled": sorted(set(known) - set(enabled)) if enabled is not None else [],
        "known": known,
        "source": "database" if stored is not None else ("CONSENTRY_SIGNAL_TYPES" if default else "default (all)"),
    }


def set_signal_types(db: Database, enabled: Sequence[str], actor: str | None = None) -> list[str]:
    """Store the enabled signal types (validated) and tell every worker."""
    names = validate_signal_types(enabled)
    if not names:
        raise SettingsError("at least one signal type must stay enabled")
    from consentry.review.audit import AuditLog

    with db.session() as s:
        row = s.get(InstanceSetting, SIGNAL_TYPES)
        before = list(row.value) if row is not None and isinstance(row.value, list) else None
        if row is None:
            s.add(InstanceSetting(name=SIGNAL_TYPES, value=names, updated_by=actor))
        else:
            row.value = names
            row.updated_by = actor
        s.add(Change(op="settings"))
        AuditLog(db).record("settings.signal_types", actor or "system",
                            {"enabled": names, "before": before}, session=s)
    return names


def change_signal_type(db: Database, name: str, on: bool, default: Sequence[str] | None = None,
                       actor: str | None = None) -> list[str]:
    """Switch one signal type on or off (``consentry signals enable/disable NAME``)."""
    names = validate_signal_types([name])
    if not names:
        raise SettingsError("name a signal type")
    name = names[0]
    current = enabled_signal_types(db, default)
    enabled = set(current) if current is not None else set(known_signal_types())
    if on:
        enabled.add(name)
    else:
        enabled.discard(name)
    return set_signal_types(db, sorted(enabled), actor)
