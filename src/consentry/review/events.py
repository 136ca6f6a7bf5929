"""One door from the review code to the hash-chained audit log and the evidence vault.

Cases, logins and reveals record their events through :func:`record_event`, passing the open
SQLAlchemy session so an event commits (or rolls back) with the change it describes.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from consentry.db.session import Database


def record_event(db: Database, event_type: str, actor: str, data: dict[str, Any], *,
                 session: Session | None = None) -> None:
    """Append one event to the audit log (``consentry.review.audit.AuditLog``)."""
    from consentry.review.audit import AuditLog

    AuditLog(db).record(event_type, actor, data, session=session)


def open_vault(settings: Any, db: Database):
    """The evidence vault, or None when it is disabled (no ``CONSENTRY_VAULT_KEY``)."""
    from consentry.review import vault as vault_mod

    Vault = vault_mod.Vault
    if hasattr(Vault, "from_settings"):
        return Vault.from_settings(settings, db)
    try:
        return Vault(settings, db)
    except TypeError:
        return Vault(settings)
