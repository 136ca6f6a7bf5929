"""Extra local PDQ hashes of bank entries stored with their picture (issue 21): crops, rotations and
the picture without borders, matched as the entry itself and never exported.

Revision ID: 0017i21
Revises: 0016i14
"""
import sqlalchemy as sa
from alembic import op


revision = '0017i21'
down_revision = '0016i14'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'entry_variants',
        sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
        sa.Column('entry_id', sa.BigInteger(), nullable=False),
        sa.Column('kind', sa.String(length=32), nullable=False),
        sa.Column('pdq', sa.String(length=64), nullable=False),
        sa.Column('quality', sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_entry_variants_entry', 'entry_variants', ['entry_id'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_entry_variants_entry', table_name='entry_variants')
    op.drop_table('entry_variants')
