"""Tables of NCMEC CyberTipline reports and preservation holds (issue 15).

- ``cybertip_reports``: one row per case (``case_id`` is unique: the idempotency key, so a case is
  never filed twice). It keeps the report document as built (``report_xml``), the platform's
  details the report was built from, NCMEC's report id once ``/submit`` answered, the files
  uploaded so far (so an interrupted filing resumes instead of starting a second report), who
  drafted, approved and filed it, and when (the transparency report reads these).
- ``preservation_holds``: a hold on a case's records, audit events and vault items until
  ``expires_at`` (one year after a CyberTipline report). Released on expiry, or early only by an
  administrator with a recorded reason.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, DateTime, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from consentry.db.models import Base, BigId, utcnow

REPORT_STATUSES = ("draft", "pending_approval", "approved", "submitting", "filed", "failed", "retracted")


class CybertipReport(Base):
    __tablename__ = "cybertip_reports"
    __table_args__ = (Index("ix_cybertip_reports_status", "status"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="RESTRICT"), unique=True)
    status: Mapped[str] = mapped_column(String(20), default="draft")
    environment: Mapped[str] = mapped_column(String(20), default="test")  # test | production
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # what the platform supplied
    report_xml: Mapped[str] = mapped_column(Text, default="")
    files: Mapped[list[Any]] = mapped_column(JSON, default=list)  # per item: file id, fileinfo sent
    ncmec_report_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    drafted_by: Mapped[str] = mapped_column(String(200))
    approved_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
    filed_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    submitted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    filed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    retracted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    lease_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)


class PreservationHold(Base):
    __tablename__ = "preservation_holds"
    __table_args__ = (Index("ix_preservation_holds_case", "case_id"),
                      Index("ix_preservation_holds_expires", "released_at", "expires_at"))

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="RESTRICT"))
    report_id: Mapped[int | None] = mapped_column(ForeignKey("cybertip_reports.id", ondelete="RESTRICT"),
                                                  nullable=True)
    reason: Mapped[str] = mapped_column(String(500))
    placed_by: Mapped[str] = mapped_column(String(200))
    placed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # what is held: {"vault_items": [...], "case_items": [...], "audit_seqs": [...]}
    scope: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    released_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    released_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
    release_reason: Mapped[str | None] = mapped_column(String(1000), nullable=True)
