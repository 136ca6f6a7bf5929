"""victims: victim cases and hashes, partner feedback, exchanges and checkpoints

Revision ID: 0004
Revises: 0003
"""
from alembic import op
import sqlalchemy as sa


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    op.create_table(
        'victim_cases',
        sa.Column('id', _ID, autoincrement=True, nullable=False),
        sa.Column('number_hash', sa.String(length=64), nullable=False),
        sa.Column('pin_hash', sa.String(length=200), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('bank_id', sa.BigInteger(), nullable=True),
        sa.Column('failed_pins', sa.Integer(), nullable=False),
        sa.Column('locked_until', sa.DateTime(timezone=True), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('withdrawn_at', sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_victim_cases')),
        sa.UniqueConstraint('number_hash', name=op.f('uq_victim_cases_number_hash')),
    )
    op.create_table(
        'victim_hashes',
        sa.Column('id', _ID, autoincrement=True, nullable=False),
        sa.Column('case_id', _ID, nullable=False),
        sa.Column('signal_type', sa.String(length=32), nullable=False),
        sa.Column('entry_id', sa.BigInteger(), nullable=True),
        sa.Column('opaque_id', sa.String(length=40), nullable=False),
        sa.ForeignKeyConstraint(['case_id'], ['victim_cases.id'], name=op.f('fk_victim_hashes_case_id_victim_cases'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_victim_hashes')),
        sa.UniqueConstraint('opaque_id', name=op.f('uq_victim_hashes_opaque_id')),
    )
    with op.batch_alter_table('victim_hashes', schema=None) as batch_op:
        batch_op.create_index('ix_victim_hashes_case', ['case_id'], unique=False)
        batch_op.create_index('ix_victim_hashes_entry', ['entry_id'], unique=False)
    op.create_table(
        'partner_feedback',
        sa.Column('id', _ID, autoincrement=True, nullable=False),
        sa.Column('entry_id', sa.BigInteger(), nullable=False),
        sa.Column('key_id', sa.BigInteger(), nullable=False),
        sa.Column('status', sa.String(length=20), nullable=False),
        sa.Column('at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_partner_feedback')),
        sa.UniqueConstraint('entry_id', 'key_id', name='uq_partner_feedback_entry_key'),
    )
    op.create_table(
        'exchanges',
        sa.Column('id', _ID, autoincrement=True, nullable=False),
        sa.Column('name', sa.String(length=100), nullable=False),
        sa.Column('type', sa.String(length=40), nullable=False),
        sa.Column('url', sa.String(length=1000), nullable=False),
        sa.Column('key_encrypted', sa.Text(), nullable=False),
        sa.Column('bank', sa.String(length=200), nullable=False),
        sa.Column('cursor', sa.BigInteger(), nullable=False),
        sa.Column('last_pull_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('last_error', sa.String(length=500), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_exchanges')),
        sa.UniqueConstraint('name', name=op.f('uq_exchanges_name')),
    )


def downgrade() -> None:
    op.drop_table('exchanges')
    op.drop_table('partner_feedback')
    with op.batch_alter_table('victim_hashes', schema=None) as batch_op:
        batch_op.drop_index('ix_victim_hashes_entry')
        batch_op.drop_index('ix_victim_hashes_case')
    op.drop_table('victim_hashes')
    op.drop_table('victim_cases')
