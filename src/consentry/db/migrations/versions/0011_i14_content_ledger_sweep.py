"""content ledger (hosted content as hashes, its change log) and the sweep's hits and cursor

Revision ID: 0011i14
Revises: 0010i23
"""
from alembic import op
import sqlalchemy as sa


revision = '0011i14'
down_revision = '0010i23'
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    op.create_table(
        'ledger_content',
        sa.Column('id', BigId, autoincrement=True, nullable=False),
        sa.Column('content_id', sa.String(length=200), nullable=False),
        sa.Column('url', sa.Text(), nullable=True),
        sa.Column('url_key', sa.String(length=64), nullable=True),
        sa.Column('uploader_id', sa.String(length=200), nullable=True),
        sa.Column('surface', sa.String(length=100), nullable=True),
        sa.Column('content_type', sa.String(length=16), nullable=True),
        sa.Column('md5', sa.String(length=32), nullable=True),
        sa.Column('sha256', sa.String(length=64), nullable=True),
        sa.Column('pdq', sa.String(length=64), nullable=True),
        sa.Column('pdq_quality', sa.Integer(), nullable=True),
        sa.Column('pdq_variants', sa.Text(), nullable=True),
        sa.Column('vpdq', sa.Text(), nullable=True),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('deleted_at', sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint('id', name='pk_ledger_content'),
        sa.UniqueConstraint('content_id', name='uq_ledger_content_content_id'),
    )
    op.create_index('ix_ledger_content_url_key', 'ledger_content', ['url_key'])
    op.create_index('ix_ledger_content_sha256', 'ledger_content', ['sha256'])
    op.create_index('ix_ledger_content_md5', 'ledger_content', ['md5'])
    op.create_index('ix_ledger_content_uploader', 'ledger_content', ['uploader_id'])
    op.create_table(
        'ledger_changes',
        sa.Column('id', BigId, autoincrement=True, nullable=False),
        sa.Column('at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('op', sa.String(length=16), nullable=False),
        sa.Column('content_pk', sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint('id', name='pk_ledger_changes'),
    )
    op.create_table(
        'sweep_hits',
        sa.Column('id', BigId, autoincrement=True, nullable=False),
        sa.Column('content_pk', sa.BigInteger(), nullable=False),
        sa.Column('content_id', sa.String(length=200), nullable=False),
        sa.Column('entry_id', sa.BigInteger(), nullable=False),
        sa.Column('bank_id', sa.BigInteger(), nullable=False),
        sa.Column('bank', sa.String(length=200), nullable=False),
        sa.Column('signal_type', sa.String(length=32), nullable=False),
        sa.Column('distance', sa.Float(), nullable=False),
        sa.Column('transform', sa.String(length=32), nullable=True),
        sa.Column('at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('trigger', sa.String(length=64), nullable=False),
        sa.Column('action', sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint('id', name='pk_sweep_hits'),
        sa.UniqueConstraint('content_pk', 'entry_id', name='uq_sweep_hits_content_entry'),
    )
    op.create_index('ix_sweep_hits_entry', 'sweep_hits', ['entry_id'])
    op.create_index('ix_sweep_hits_bank_at', 'sweep_hits', ['bank_id', 'at'])
    op.create_table(
        'sweep_cursors',
        sa.Column('name', sa.String(length=64), nullable=False),
        sa.Column('cursor', sa.BigInteger(), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('name', name='pk_sweep_cursors'),
    )


def downgrade() -> None:
    op.drop_table('sweep_cursors')
    op.drop_index('ix_sweep_hits_bank_at', table_name='sweep_hits')
    op.drop_index('ix_sweep_hits_entry', table_name='sweep_hits')
    op.drop_table('sweep_hits')
    op.drop_table('ledger_changes')
    op.drop_index('ix_ledger_content_uploader', table_name='ledger_content')
    op.drop_index('ix_ledger_content_md5', table_name='ledger_content')
    op.drop_index('ix_ledger_content_sha256', table_name='ledger_content')
    op.drop_index('ix_ledger_content_url_key', table_name='ledger_content')
    op.drop_table('ledger_content')
