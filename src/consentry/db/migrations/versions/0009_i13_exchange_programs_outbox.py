"""exchanges: programs (StopNCII, NCMEC, ThreatExchange) with options, checkpoint state and pull
statistics; the per-exchange feedback outbox; signals kept but not matched (StopNCII VideoTMK)

Revision ID: 0009i13
Revises: 0008i22
"""
from alembic import op
import sqlalchemy as sa


revision = '0009i13'
down_revision = '0008i22'
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    with op.batch_alter_table('exchanges', schema=None) as batch_op:
        batch_op.add_column(sa.Column('environment', sa.String(length=20), server_default='production',
                                      nullable=False))
        batch_op.add_column(sa.Column('options', sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column('state', sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column('last_success_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('last_added', sa.Integer(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('last_removed', sa.Integer(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('credentials_rotated_at', sa.DateTime(timezone=True), nullable=True))
    op.create_table(
        'exchange_outbox',
        sa.Column('id', _ID, autoincrement=True, nullable=False),
        sa.Column('exchange_id', _ID, nullable=False),
        sa.Column('kind', sa.String(length=16), nullable=False),
        sa.Column('signal_type', sa.String(length=32), nullable=False),
        sa.Column('value', sa.Text(), nullable=False),
        sa.Column('status', sa.String(length=20), nullable=False),
        sa.Column('external_id', sa.String(length=300), nullable=True),
        sa.Column('case_id', sa.BigInteger(), nullable=True),
        sa.Column('decision_id', sa.BigInteger(), nullable=True),
        sa.Column('dedupe', sa.String(length=64), nullable=False),
        sa.Column('state', sa.String(length=12), nullable=False),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('last_error', sa.String(length=500), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('sent_at', sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(['exchange_id'], ['exchanges.id'],
                                name=op.f('fk_exchange_outbox_exchange_id_exchanges'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_exchange_outbox')),
        sa.UniqueConstraint('dedupe', name=op.f('uq_exchange_outbox_dedupe')),
    )
    with op.batch_alter_table('exchange_outbox', schema=None) as batch_op:
        batch_op.create_index('ix_exchange_outbox_due', ['exchange_id', 'state', 'next_attempt_at'], unique=False)
        batch_op.create_index('ix_exchange_outbox_decision', ['decision_id'], unique=False)
    op.create_table(
        'exchange_kept_signals',
        sa.Column('id', _ID, autoincrement=True, nullable=False),
        sa.Column('exchange_id', _ID, nullable=False),
        sa.Column('signal_type', sa.String(length=32), nullable=False),
        sa.Column('value_sha256', sa.String(length=64), nullable=False),
        sa.Column('value', sa.Text(), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['exchange_id'], ['exchanges.id'],
                                name=op.f('fk_exchange_kept_signals_exchange_id_exchanges'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_exchange_kept_signals')),
        sa.UniqueConstraint('exchange_id', 'signal_type', 'value_sha256', name='uq_exchange_kept_signals_value'),
    )


def downgrade() -> None:
    op.drop_table('exchange_kept_signals')
    with op.batch_alter_table('exchange_outbox', schema=None) as batch_op:
        batch_op.drop_index('ix_exchange_outbox_decision')
        batch_op.drop_index('ix_exchange_outbox_due')
    op.drop_table('exchange_outbox')
    with op.batch_alter_table('exchanges', schema=None) as batch_op:
        for c in ('credentials_rotated_at', 'last_removed', 'last_added', 'last_success_at', 'state', 'options',
                  'environment'):
            batch_op.drop_column(c)
