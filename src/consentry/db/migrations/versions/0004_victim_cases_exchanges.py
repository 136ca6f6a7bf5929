"""victims: victim cases and hashes, partner feedback, exchanges and checkpoints

Revision ID: 0004
Revises: 0003
"""
from alembic import op  # noqa: F401
import sqlalchemy as sa  # noqa: F401


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass  # filled in by the victim-hub work (issue 8)


def downgrade() -> None:
    pass
