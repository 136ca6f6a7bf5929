"""Notice and statement-of-reasons tables (issue 14 points 3 and 4). See docs/notices.md.

- ``notices``: one row per notice (TAKE IT DOWN Act request or DSA Art. 16 notice), with the
  notifier's details (personal data: never exported), the clock and the decision.
- ``notice_locations``: each location a notice names, resolved to ledger content when it can be.
- ``notice_events``: what happened to a notice, in order (received, completed, case opened,
  joined, escalated, decided, sweep, rejected, statement issued): the record of "reasonable efforts".
- ``statements_of_reasons``: one per restriction decision; ``body`` is the DSA Transparency
  Database submission (no personal data), with its submission state.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, DateTime, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from consentry.db.models import Base, BigId, utcnow

NOTICE_REGIMES = ("take_it_down", "dsa_art16")
NOTICE_STATUSES = ("incomplete", "open", "decided", "rejected", "duplicate")
NOTICE_DECISIONS = ("remove", "disable", "no_action", "reject")
STATEMENT_TDB_STATUSES = ("pending", "submitted", "failed", "not_applicable")


class Notice(Base):
    __tablename__ = "notices"
    __table_args__ = (
        Index("ix_notices_status_due", "status", "due_at"),
        Index("ix_notices_case", "case_id"),
        Index("ix_notices_received", "received_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    number: Mapped[str] = mapped_column(String(24), unique=True)  # shown to the notifier
    regime: Mapped[str] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(20), default="open")
    channel: Mapped[str] = mapped_column(String(10))  # form | api
    submitted_by: Mapped[str] = mapped_column(String(200))  # "public" or "key:<id>"
    category: Mapped[str] = mapped_column(String(20), default="ncii")  # ncii | deepfake | csam | other
    # the notifier (personal data, kept for the contact step and the decision notice only)
    notifier_name: Mapped[str | None] = mapped_column(String(300), nullable=True)
    notifier_email: Mapped[str | None] = mapped_column(String(320), nullable=True)
    notifier_contact: Mapped[str | None] = mapped_column(String(500), nullable=True)
    signature: Mapped[str | None] = mapped_column(String(300), nullable=True)
    explanation: Mapped[str | None] = mapped_column(Text, nullable=True)
    good_faith: Mapped[bool] = mapped_column(Boolean, default=False)
    lang: Mapped[str] = mapped_column(String(8), default="en")
    missing: Mapped[list[Any]] = mapped_column(JSON, default=list)
    completion_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)  # SHA-256 of the contact-step token
    # an attached image: hashes always, bytes only in the vault (when it is on)
    image_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    image_md5: Mapped[str | None] = mapped_column(String(32), nullable=True)
    image_pdq: Mapped[str | None] = mapped_column(String(64), nullable=True)
    image_vault_item_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # the clock: starts when the notice is complete (valid)
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    valid_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    due_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    escalate_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    escalated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    case_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id", ondelete="SET NULL"), nullable=True)
    duplicate_of: Mapped[int | None] = mapped_column(ForeignKey("notices.id", ondelete="SET NULL"), nullable=True)
    # the decision
    decision: Mapped[str | None] = mapped_column(String(20), nullable=True)
    decision_ground: Mapped[str | None] = mapped_column(String(20), nullable=True)  # legal | policy
    decision_reference: Mapped[str | None] = mapped_column(String(500), nullable=True)  # law or ToS clause
    decision_explanation: Mapped[str | None] = mapped_column(Text, nullable=True)
    automated: Mapped[bool] = mapped_column(Boolean, default=False)
    decided_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
    decided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    rejection_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class NoticeLocation(Base):
    __tablename__ = "notice_locations"
    __table_args__ = (
        Index("ix_notice_locations_notice", "notice_id"),
        Index("ix_notice_locations_content", "content_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    notice_id: Mapped[int] = mapped_column(ForeignKey("notices.id", ondelete="CASCADE"))
    location: Mapped[str] = mapped_column(Text)  # as the notifier gave it (URL or content id)
    content_id: Mapped[str | None] = mapped_column(String(200), nullable=True)  # resolved ledger content
    url: Mapped[str | None] = mapped_column(Text, nullable=True)
    uploader_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    md5: Mapped[str | None] = mapped_column(String(32), nullable=True)
    pdq: Mapped[str | None] = mapped_column(String(64), nullable=True)
    resolved: Mapped[bool] = mapped_column(Boolean, default=False)


class NoticeEvent(Base):
    __tablename__ = "notice_events"
    __table_args__ = (Index("ix_notice_events_notice", "notice_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    notice_id: Mapped[int] = mapped_column(ForeignKey("notices.id", ondelete="CASCADE"))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    kind: Mapped[str] = mapped_column(String(30))
    actor: Mapped[str] = mapped_column(String(200))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class StatementOfReasons(Base):
    __tablename__ = "statements_of_reasons"
    __table_args__ = (
        Index("ix_statements_of_reasons_notice", "notice_id"),
        Index("ix_statements_of_reasons_tdb", "tdb_status", "id"),
        Index("ix_statements_of_reasons_created", "created_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    puid: Mapped[str] = mapped_column(String(200), unique=True)
    notice_id: Mapped[int | None] = mapped_column(ForeignKey("notices.id", ondelete="SET NULL"), nullable=True)
    case_id: Mapped[int | None] = mapped_column(BigId, nullable=True)
    content_id: Mapped[str | None] = mapped_column(String(200), nullable=True)  # the platform's, not exported
    uploader_id: Mapped[str | None] = mapped_column(String(200), nullable=True)  # to whom it is addressed
    restriction: Mapped[str] = mapped_column(String(20))  # removal | disable | account_suspension | ...
    source: Mapped[str] = mapped_column(String(20))  # notice | sweep | own_initiative
    automated_detection: Mapped[bool] = mapped_column(Boolean, default=False)
    automated_decision: Mapped[str] = mapped_column(String(20), default="not_automated")  # fully | partially
    body: Mapped[dict[str, Any]] = mapped_column(JSON)  # the DSA Transparency Database submission
    redress: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    tdb_status: Mapped[str] = mapped_column(String(20), default="pending")
    tdb_uuid: Mapped[str | None] = mapped_column(String(64), nullable=True)
    tdb_submitted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    tdb_attempts: Mapped[int] = mapped_column(Integer, default=0)
    tdb_error: Mapped[str | None] = mapped_column(Text, nullable=True)
