"""shared rate-limit buckets for every worker and host (UNLOGGED on PostgreSQL); banks remember
that they were ever published, and a published bank's deletion is flagged in the change log

Revision ID: 0010i23
Revises: 0009i13
"""
from alembic import op
import sqlalchemy as sa


revision = '0010i23'
down_revision = '0009i13'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'rate_limit_buckets',
        sa.Column('scope', sa.String(length=40), nullable=False),
        sa.Column('bucket', sa.String(length=64), nullable=False),
        sa.Column('tokens', sa.Float(), nullable=False),
        sa.Column('updated', sa.Float(), nullable=False),
        sa.Column('granted', sa.Float(), nullable=False),
        sa.Column('expires', sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint('scope', 'bucket', name='pk_rate_limit_buckets'),
    )
    if op.get_bind().dialect.name == 'postgresql':  # no WAL: a crash only refills the buckets
        op.execute(sa.text('ALTER TABLE rate_limit_buckets SET UNLOGGED'))
    op.create_index('ix_rate_limit_buckets_expires', 'rate_limit_buckets', ['expires'])
    with op.batch_alter_table('banks', schema=None) as batch_op:
        batch_op.add_column(sa.Column('published_at', sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table('changes', schema=None) as batch_op:
        batch_op.add_column(sa.Column('published', sa.Boolean(), nullable=True))
    # banks published now count as published from now on (an earlier un-publish is not known)
    op.execute(sa.text('UPDATE banks SET published_at = created_at WHERE shared = :t')
               .bindparams(t=True))


def downgrade() -> None:
    with op.batch_alter_table('changes', schema=None) as batch_op:
        batch_op.drop_column('published')
    with op.batch_alter_table('banks', schema=None) as batch_op:
        batch_op.drop_column('published_at')
    op.drop_index('ix_rate_limit_buckets_expires', table_name='rate_limit_buckets')
    op.drop_table('rate_limit_buckets')
