"""issue 22: per-bank rollout (match_percent), timed disabling of banks and entries
(disabled_until), instance settings (signal types on/off), API keys allowed to fetch by URL

Revision ID: 0008i22
Revises: 0007
"""
from alembic import op
import sqlalchemy as sa


revision = '0008i22'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('banks', schema=None) as batch_op:
        batch_op.add_column(sa.Column('match_percent', sa.Float(), server_default='100', nullable=False))
        batch_op.add_column(sa.Column('disabled_until', sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table('entries', schema=None) as batch_op:
        batch_op.add_column(sa.Column('disabled_until', sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table('api_keys', schema=None) as batch_op:
        batch_op.add_column(sa.Column('allow_url', sa.Boolean(), server_default=sa.false(), nullable=False))
    op.create_table('instance_settings',
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('value', sa.JSON(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_by', sa.String(length=200), nullable=True),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_instance_settings'))
    )


def downgrade() -> None:
    op.drop_table('instance_settings')
    with op.batch_alter_table('api_keys', schema=None) as batch_op:
        batch_op.drop_column('allow_url')
    with op.batch_alter_table('entries', schema=None) as batch_op:
        batch_op.drop_column('disabled_until')
    with op.batch_alter_table('banks', schema=None) as batch_op:
        batch_op.drop_column('disabled_until')
        batch_op.drop_column('match_percent')
