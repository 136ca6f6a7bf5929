"""Tables. No pickles: everything is plain columns and JSON.

``changes`` is the append-only change log (cursor = its id) that in-memory indexes, other API
workers and partner instances tail to stay current without reloading snapshots.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy import false as sa_false
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# SQLite only auto-increments INTEGER PRIMARY KEY; PostgreSQL gets a real BIGINT.
BigId = BigInteger().with_variant(Integer(), "sqlite")

BANK_KINDS = ("ncii", "csam", "ai-abuse", "terror", "allow", "custom")
ENTRY_STATUSES = ("active", "disabled", "withdrawn")


def value_key(value: str) -> str:
    if len(value) <= 72:
        return value
    import hashlib

    return "sha256:" + hashlib.sha256(value.encode("utf-8")).hexdigest()


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {dict[str, Any]: JSON, list[str]: JSON}


class Bank(Base):
    __tablename__ = "banks"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    kind: Mapped[str] = mapped_column(String(20))
    description: Mapped[str] = mapped_column(Text, default="")
    thresholds: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # {"pdq": 31}
    source: Mapped[str] = mapped_column(String(200), default="local")
    shared: Mapped[bool] = mapped_column(Boolean, default=False)
    # when the bank was first published to partners (kept after un-publishing: partners may hold
    # its entries, so its deletion is still announced to them; issue 23)
    published_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    # gradual rollout: the share (0-100 %) of lookups that may match this bank, picked
    # deterministically per content; disabled_until: the bank matches nothing until then
    match_percent: Mapped[float] = mapped_column(Float, default=100.0, server_default="100")
    disabled_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)

    entries: Mapped[list["Entry"]] = relationship(
        back_populates="bank", primaryjoin="Bank.id == foreign(Entry.bank_id)", passive_deletes=True)


_NOT_ACTIVE = "status <> 'active'"


class Entry(Base):
    __tablename__ = "entries"
    __table_args__ = (
        UniqueConstraint("bank_id", "signal_type", "value_key", name="uq_entries_bank_signal_value"),
        # only the few entries that are not active (migration 0015): queries about withdrawn and
        # disabled entries add ENTRY_NOT_ACTIVE, the index's own condition, so both databases use it
        Index("ix_entries_bank_not_active", "bank_id", "status",
              sqlite_where=text(_NOT_ACTIVE), postgresql_where=text(_NOT_ACTIVE)),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    # no foreign key (migration 0014): its per-row check halved bulk loads; delete_bank removes
    # the entries, and imports hold the bank row for each batch
    bank_id: Mapped[int] = mapped_column(BigId)
    signal_type: Mapped[str] = mapped_column(String(32))
    value: Mapped[str] = mapped_column(Text)
    # ``value`` itself when short (hashes), else "sha256:<hex of value>" (vPDQ frame lists), so
    # the unique index stays small on every database.
    value_key: Mapped[str] = mapped_column(String(80))
    quality: Mapped[int | None] = mapped_column(Integer, nullable=True)
    status: Mapped[str] = mapped_column(String(16), default="active")
    # a "disabled" entry with disabled_until matches again once that time has passed
    disabled_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    source: Mapped[str | None] = mapped_column(String(200), nullable=True)
    external_ids: Mapped[list[str]] = mapped_column(JSON, default=list)
    tags: Mapped[list[str]] = mapped_column(JSON, default=list)
    category: Mapped[str | None] = mapped_column(String(200), nullable=True)
    meta: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    added_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
    added_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)

    bank: Mapped[Bank] = relationship(back_populates="entries", primaryjoin="Bank.id == foreign(Entry.bank_id)")


class EntryVariant(Base):
    """A local, extra PDQ hash of a bank entry stored with its picture at hand (issue 21): the
    picture without borders, centre and corner crops, small rotations
    (:func:`consentry.signals.canonical.stored_extra_hashes`). Matched as the entry itself; never
    exported, published or exchanged (other programs get the entry's standard PDQ)."""

    __tablename__ = "entry_variants"
    __table_args__ = (Index("ix_entry_variants_entry", "entry_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    # no foreign key, as entries.bank_id: delete_bank removes them with the entries
    entry_id: Mapped[int] = mapped_column(BigInteger)
    kind: Mapped[str] = mapped_column(String(32))  # trimmed, crop90@0.5,0.5, rot+3, ...
    pdq: Mapped[str] = mapped_column(String(64))
    quality: Mapped[int] = mapped_column(Integer)


#: the condition of the partial index on entries, as a literal (a bound parameter would keep
#: SQLite from matching it to the index, and PostgreSQL's generic plans too)
ENTRY_NOT_ACTIVE = text("entries." + _NOT_ACTIVE)


class Change(Base):
    """One row per change that affects matching, in commit order (``id`` is the cursor)."""

    __tablename__ = "changes"
    __table_args__ = (Index("ix_changes_bank", "bank_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    op: Mapped[str] = mapped_column(String(16))  # add | withdraw | disable | enable | bank
    bank_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    entry_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    signal_type: Mapped[str | None] = mapped_column(String(32), nullable=True)
    # bank_deleted of a bank that was ever published: served to partners although the bank is gone
    published: Mapped[bool | None] = mapped_column(Boolean, nullable=True)


#: API-key (and console) roles. ``partner``: another organisation's instance subscribed to this one
#: as a hub; it sees published banks only, without internal provenance (``matcher`` is this
#: platform's own upload path and sees every bank).
#: ``uploader`` (issue 14): the platform's upload path with the content ledger: hash and match as
#: ``matcher``, and register/remove hosted content (``/v1/content``).
ROLES = ("admin", "curator", "matcher", "moderator", "auditor", "submitter", "partner", "uploader")


class ApiKey(Base):
    """An API key: only a SHA-256 of the secret is stored (keys are 256-bit random tokens)."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    role: Mapped[str] = mapped_column(String(20))
    prefix: Mapped[str] = mapped_column(String(16))  # first characters, to tell keys apart
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    allow_url: Mapped[bool] = mapped_column(Boolean, default=False, server_default=sa_false())  # may fetch by URL
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class MatchLog(Base):
    """One row per match request: who asked, when, how many results. Never the media."""

    __tablename__ = "match_log"
    __table_args__ = (Index("ix_match_log_key_at", "key_id", "at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    key_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    route: Mapped[str] = mapped_column(String(64))
    signal_types: Mapped[str] = mapped_column(String(200), default="")
    result_count: Mapped[int] = mapped_column(Integer, default=0)


class InstanceSetting(Base):
    """Instance-wide settings changed while running (e.g. enabled signal types), read by every
    worker (a change-log entry ``settings`` tells them to re-read)."""

    __tablename__ = "instance_settings"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    value: Mapped[Any] = mapped_column(JSON)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)
    updated_by: Mapped[str | None] = mapped_column(String(200), nullable=True)


# Models of other areas live in their own modules on the same Base; importing them here puts
# their tables in Base.metadata for Alembic and for create-all in tests.
from consentry.db import models_review as _models_review  # noqa: E402,F401
from consentry.db import models_victims as _models_victims  # noqa: E402,F401
from consentry.db import models_audit as _models_audit  # noqa: E402,F401
from consentry.db import models_cybertip as _models_cybertip  # noqa: E402,F401  (issue 15)
from consentry.db import models_ledger as _models_ledger  # noqa: E402,F401  (issue 14)
from consentry.db import models_notices as _models_notices  # noqa: E402,F401  (issue 14: notices)
