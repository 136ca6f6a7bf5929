"""console login lock-out on the user row; CSRF tokens stored as SHA-256 (old sessions end)

Revision ID: 0007
Revises: 0005
"""
from alembic import op
import sqlalchemy as sa


revision = '0007'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('failed_logins', sa.Integer(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('last_failed_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('locked_until', sa.DateTime(timezone=True), nullable=True))
    # sessions made before this revision hold their CSRF token in plain text: end them (users log
    # in again; new sessions store only the token's SHA-256)
    op.execute(sa.text('DELETE FROM console_sessions'))


def downgrade() -> None:
    op.execute(sa.text('DELETE FROM console_sessions'))
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_column('locked_until')
        batch_op.drop_column('last_failed_at')
        batch_op.drop_column('failed_logins')
