"""Tables of the review area: console users and sessions, cases and their items, decisions,
reveals (the exposure log).

Passwords are argon2 hashes; session tokens are stored as SHA-256 (they are 256-bit random
values, like API keys). Media never live here: a case item points at an encrypted vault item.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, DateTime, ForeignKey, Index, Integer, String, Text
from sqlalchemy import false as sa_false
from sqlalchemy.orm import Mapped, mapped_column, relationship

from consentry.db.models import Base, BigId, utcnow

CASE_STATUSES = ("open", "claimed", "pending_approval", "escalated", "decided")
DECISION_KINDS = ("confirm", "dismiss", "escalate")
DECISION_STATUSES = ("pending_second_review", "applied", "rejected", "undone")


class User(Base):
    """A console login. ``role`` is one of :data:`consentry.db.models.ROLES`."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    username: Mapped[str] = mapped_column(String(100), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(20))
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_login_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    # login lock-out, kept on the row so it holds across workers and is never forgotten
    # (see consentry.review.users.UserService.login)
    failed_logins: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    last_failed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    locked_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    # may file NCMEC CyberTipline reports (issue 15); granted by an administrator
    can_report: Mapped[bool] = mapped_column(Boolean, default=False, server_default=sa_false())


class ConsoleSession(Base):
    __tablename__ = "console_sessions"
    __table_args__ = (Index("ix_console_sessions_user", "user_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    csrf_token: Mapped[str] = mapped_column(String(64))  # SHA-256 hex of the session's CSRF token
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Case(Base):
    """A unit of review: one uploader's contents in one queue (or one content without uploader)."""

    __tablename__ = "cases"
    __table_args__ = (
        Index("ix_cases_status_priority", "status", "priority", "sla_due_at"),
        Index("ix_cases_group_key", "group_key"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    status: Mapped[str] = mapped_column(String(20), default="open")
    queue: Mapped[str] = mapped_column(String(100), default="default")
    priority: Mapped[int] = mapped_column(Integer, default=50)  # 0..100, higher first
    uploader_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    group_key: Mapped[str] = mapped_column(String(400))
    source: Mapped[str] = mapped_column(String(20), default="manual")  # enqueue | manual
    submitted_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
    note: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    sla_due_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    claimed_by: Mapped[str | None] = mapped_column(String(100), nullable=True)
    claimed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    claim_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    decided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)

    items: Mapped[list["CaseItem"]] = relationship(back_populates="case", order_by="CaseItem.id",
                                                   passive_deletes=True)


class CaseItem(Base):
    __tablename__ = "case_items"
    __table_args__ = (Index("ix_case_items_case", "case_id"), Index("ix_case_items_sha256", "content_sha256"))

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"))
    content_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    content_type: Mapped[str] = mapped_column(String(20), default="photo")
    media_type: Mapped[str | None] = mapped_column(String(100), nullable=True)  # MIME of vaulted bytes
    md5: Mapped[str | None] = mapped_column(String(32), nullable=True)
    pdq: Mapped[str | None] = mapped_column(String(64), nullable=True)
    pdq_quality: Mapped[int | None] = mapped_column(Integer, nullable=True)
    matches: Mapped[list[Any]] = mapped_column(JSON, default=list)
    evidence: Mapped[list[Any]] = mapped_column(JSON, default=list)
    vault_item_id: Mapped[str | None] = mapped_column(String(100), nullable=True)
    added_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    case: Mapped[Case] = relationship(back_populates="items")


class Decision(Base):
    __tablename__ = "decisions"
    __table_args__ = (Index("ix_decisions_case", "case_id"), Index("ix_decisions_status", "status"))

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"))
    reviewer: Mapped[str] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(16))
    bank: Mapped[str | None] = mapped_column(String(200), nullable=True)
    status: Mapped[str] = mapped_column(String(32))
    note: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    second_reviewer: Mapped[str | None] = mapped_column(String(100), nullable=True)
    reviewed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    applied_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    result: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # entry ids added, ...


class Reveal(Base):
    """One reveal of one media item by one reviewer (the exposure log)."""

    __tablename__ = "reveals"
    __table_args__ = (Index("ix_reveals_reviewer_at", "reviewer", "at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    reviewer: Mapped[str] = mapped_column(String(100))
    item_id: Mapped[int] = mapped_column(ForeignKey("case_items.id", ondelete="CASCADE"))
    case_id: Mapped[int] = mapped_column(BigInteger)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
