"""Bulk loading at volume (issue 22 point 6, issue 13): entries lose the index on
(signal_type, value_key), which every query that looks a value up also filters by bank and so
finds in the unique index, and the foreign key to banks, whose per-row check cost more than
half of a PostgreSQL ``COPY`` (bank deletion removes its entries itself, and an import checks its
bank once per batch, holding it against deletion until the batch commits).

On SQLite dropping the foreign key rebuilds the entries table (a copy, once).

Revision ID: 0014i22
Revises: 0013i14
"""
from alembic import op


revision = '0014i22'
down_revision = '0013i14'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('entries', schema=None) as batch_op:
        batch_op.drop_index('ix_entries_signal_value')
        batch_op.drop_constraint('fk_entries_bank_id_banks', type_='foreignkey')


def downgrade() -> None:
    with op.batch_alter_table('entries', schema=None) as batch_op:
        batch_op.create_foreign_key('fk_entries_bank_id_banks', 'banks', ['bank_id'], ['id'], ondelete='CASCADE')
        batch_op.create_index('ix_entries_signal_value', ['signal_type', 'value_key'], unique=False)
