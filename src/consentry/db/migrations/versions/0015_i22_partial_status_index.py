"""Bulk loading at volume (issue 22 point 6): the index on entries (bank_id, status) becomes a
partial index of the entries that are not ``active``. Nearly every entry is active, so the full
index held a million identical keys per million entries and cost about 30 % of a PostgreSQL
``COPY`` of new entries; the questions it answers ("does this bank have anything withdrawn?",
"which timed disables have run out?", counts of withdrawn and disabled entries) only ever look at
the few entries that are not active. Counts of a bank's entries now read the unique index.

Revision ID: 0015i22
Revises: 0014i22
"""
import sqlalchemy as sa
from alembic import op


revision = '0015i22'
down_revision = '0014i22'
branch_labels = None
depends_on = None

NOT_ACTIVE = sa.text("status <> 'active'")


def upgrade() -> None:
    op.drop_index('ix_entries_bank_status', table_name='entries')
    op.create_index('ix_entries_bank_not_active', 'entries', ['bank_id', 'status'], unique=False,
                    sqlite_where=NOT_ACTIVE, postgresql_where=NOT_ACTIVE)


def downgrade() -> None:
    op.drop_index('ix_entries_bank_not_active', table_name='entries')
    op.create_index('ix_entries_bank_status', 'entries', ['bank_id', 'status'], unique=False)
