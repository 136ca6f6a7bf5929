"""Tables of the victims area: victim cases and their hashes, partner feedback, exchanges.

Nothing here can lead back to a person: a case is found by the SHA-256 of its case number (a
random >= 80-bit token, like an API key), its PIN is an Argon2id hash, and no IP address is
stored. Hashes point at entries of the hub bank; partners know those entries only by an opaque
per-hash id, never by case number.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, BigInteger, DateTime, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from consentry.db.models import Base, BigId, utcnow

CASE_STATUSES = ("active", "withdrawn")
FEEDBACK_STATUSES = ("pending_review", "blocked", "not_blocked")


class VictimCase(Base):
    __tablename__ = "victim_cases"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    number_hash: Mapped[str] = mapped_column(String(64), unique=True)  # SHA-256 of the case number
    pin_hash: Mapped[str] = mapped_column(String(200))  # Argon2id
    status: Mapped[str] = mapped_column(String(16), default="active")
    bank_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    failed_pins: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    withdrawn_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class VictimHash(Base):
    __tablename__ = "victim_hashes"
    __table_args__ = (Index("ix_victim_hashes_case", "case_id"), Index("ix_victim_hashes_entry", "entry_id"))

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("victim_cases.id", ondelete="CASCADE"))
    signal_type: Mapped[str] = mapped_column(String(32))
    entry_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)  # entry in the hub bank
    opaque_id: Mapped[str] = mapped_column(String(40), unique=True)  # what partners see


class PartnerFeedback(Base):
    """The latest verdict of one partner (API key) on one hub entry."""

    __tablename__ = "partner_feedback"
    __table_args__ = (UniqueConstraint("entry_id", "key_id", name="uq_partner_feedback_entry_key"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    entry_id: Mapped[int] = mapped_column(BigInteger)
    key_id: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(20))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ExchangeConfig(Base):
    """An external hash source this instance pulls from, with its checkpoint."""

    __tablename__ = "exchanges"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    type: Mapped[str] = mapped_column(String(40))
    url: Mapped[str] = mapped_column(String(1000))
    key_encrypted: Mapped[str] = mapped_column(Text)  # Fernet token; never printed
    bank: Mapped[str] = mapped_column(String(200))
    cursor: Mapped[int] = mapped_column(BigInteger, default=0)
    last_pull_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    last_error: Mapped[str | None] = mapped_column(String(500), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # issue 13: programs (StopNCII, NCMEC, ThreatExchange) beside consentry-hub
    environment: Mapped[str] = mapped_column(String(20), default="production")
    options: Mapped[dict | None] = mapped_column(JSON, nullable=True)  # never credentials
    state: Mapped[dict | None] = mapped_column(JSON, nullable=True)  # program checkpoint (no secrets)
    last_success_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    last_added: Mapped[int] = mapped_column(Integer, default=0)
    last_removed: Mapped[int] = mapped_column(Integer, default=0)
    credentials_rotated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


OUTBOX_STATES = ("pending", "sent", "failed", "cancelled")


class ExchangeOutbox(Base):
    """Feedback (and opted-in submissions) owed to an exchange: hashes and program statuses only,
    retried with back-off, never sent twice (``dedupe`` is unique)."""

    __tablename__ = "exchange_outbox"
    __table_args__ = (Index("ix_exchange_outbox_due", "exchange_id", "state", "next_attempt_at"),
                      Index("ix_exchange_outbox_decision", "decision_id"))

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    exchange_id: Mapped[int] = mapped_column(ForeignKey("exchanges.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16), default="feedback")  # feedback | submit
    signal_type: Mapped[str] = mapped_column(String(32))
    value: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(20))  # pending_review | blocked | not_blocked
    external_id: Mapped[str | None] = mapped_column(String(300), nullable=True)  # the program's id
    case_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    decision_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    dedupe: Mapped[str] = mapped_column(String(64), unique=True)
    state: Mapped[str] = mapped_column(String(12), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_error: Mapped[str | None] = mapped_column(String(500), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class ExchangeKeptSignal(Base):
    """Signals an exchange sends that Consentry keeps but does not match (StopNCII ``VideoTMK``).
    Removed (row deleted) when the program withdraws them."""

    __tablename__ = "exchange_kept_signals"
    __table_args__ = (UniqueConstraint("exchange_id", "signal_type", "value_sha256",
                                       name="uq_exchange_kept_signals_value"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    exchange_id: Mapped[int] = mapped_column(ForeignKey("exchanges.id", ondelete="CASCADE"))
    signal_type: Mapped[str] = mapped_column(String(32))
    value_sha256: Mapped[str] = mapped_column(String(64))
    value: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
