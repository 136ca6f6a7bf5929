"""Content ledger tables (issue 14): what the platform hosts, as hashes, and the sweep's records.

- ``ledger_content``: one row per hosted content (the platform's content id, URL, uploader,
  surface and signals). Never media. ``status`` is ``active`` or ``deleted`` (a tombstone: kept
  so a late re-import or a notice can still resolve the id, never swept).
- ``ledger_changes``: the ledger's own append-only change log (cursor = id), tailed by every
  process that holds a ledger index, like ``changes`` for banks.
- ``sweep_hits``: one row per (content, bank entry) found by a sweep, with the action taken;
  unique per pair, so the same hit is never notified twice.
- ``sweep_cursors``: the sweeper's durable position in the bank change log.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, DateTime, Float, Index, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from consentry.db.models import Base, BigId, utcnow

LEDGER_STATUSES = ("active", "deleted")
#: hex digits of a digest that the ledger's lookup indexes hold (migration 0016): 64 bits, so a
#: lookup at 10M contents meets another content's prefix about once in 10^12; the full value is
#: compared too. Four times smaller indexes than on the whole values: an import dirties that many
#: fewer pages per commit.
PREFIX = 16


def prefix_index(name: str, column: str) -> Index:
    """An index on the first :data:`PREFIX` hex digits of ``column``, for the rows that have one.
    Queries use it by naming the same expression (:func:`consentry.ledger.service.prefix_of`)."""
    present = text(f"{column} IS NOT NULL")
    return Index(name, text(f"substr({column}, 1, {PREFIX})"), sqlite_where=present, postgresql_where=present)


class LedgerContent(Base):
    __tablename__ = "ledger_content"
    __table_args__ = (
        prefix_index("ix_ledger_content_url_prefix", "url_key"),
        prefix_index("ix_ledger_content_sha256_prefix", "sha256"),
        prefix_index("ix_ledger_content_md5_prefix", "md5"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    content_id: Mapped[str] = mapped_column(String(200), unique=True)
    url: Mapped[str | None] = mapped_column(Text, nullable=True)
    # SHA-256 (hex) of the URL as given: URLs are long, the index on this stays small
    url_key: Mapped[str | None] = mapped_column(String(64), nullable=True)
    uploader_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    surface: Mapped[str | None] = mapped_column(String(100), nullable=True)
    content_type: Mapped[str | None] = mapped_column(String(16), nullable=True)
    md5: Mapped[str | None] = mapped_column(String(32), nullable=True)
    sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    pdq: Mapped[str | None] = mapped_column(String(64), nullable=True)
    pdq_quality: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # the other 7 dihedral variants of the PDQ hash (rotate90, …), concatenated hex, when known
    # (computed when the file itself is sent): they let a sweep find a rotated or mirrored copy
    pdq_variants: Mapped[str | None] = mapped_column(Text, nullable=True)
    vpdq: Mapped[str | None] = mapped_column(Text, nullable=True)
    status: Mapped[str] = mapped_column(String(16), default="active")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class LedgerChange(Base):
    """One row per ledger add/update/delete, in commit order (``id`` is the cursor)."""

    __tablename__ = "ledger_changes"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    op: Mapped[str] = mapped_column(String(16))  # add | delete
    content_pk: Mapped[int] = mapped_column(BigInteger)


class SweepHit(Base):
    __tablename__ = "sweep_hits"
    __table_args__ = (
        UniqueConstraint("content_pk", "entry_id", name="uq_sweep_hits_content_entry"),
        Index("ix_sweep_hits_entry", "entry_id"),
        Index("ix_sweep_hits_bank_at", "bank_id", "at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    content_pk: Mapped[int] = mapped_column(BigInteger)
    content_id: Mapped[str] = mapped_column(String(200))
    entry_id: Mapped[int] = mapped_column(BigInteger)
    bank_id: Mapped[int] = mapped_column(BigInteger)
    bank: Mapped[str] = mapped_column(String(200))
    signal_type: Mapped[str] = mapped_column(String(32))
    distance: Mapped[float] = mapped_column(Float)
    transform: Mapped[str | None] = mapped_column(String(32), nullable=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    trigger: Mapped[str] = mapped_column(String(64), default="change")  # change | bank-sweep | api
    # what the rules did: {"decision": ..., "rules": [...], "webhooks": [...], "enqueue": [...],
    # "case_id": ...}
    action: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class SweepCursor(Base):
    __tablename__ = "sweep_cursors"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    cursor: Mapped[int] = mapped_column(BigInteger, default=0)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
