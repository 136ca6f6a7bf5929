"""Ledger imports at volume (issue 14): the ledger's lookup indexes hold the first 16 hex digits
of the URL key, SHA-256 and MD5 (expression indexes, only for rows that have the value) instead of
whole 64-digit values, and the unused index on uploader ids is dropped. An import writes every
index page its random keys touch again at each commit; indexes a quarter of the size cost that
much less (``bench/sweep_bench.py``). Lookups name the same expression and compare the full value.

Revision ID: 0016i14
Revises: 0015i22
"""
import sqlalchemy as sa
from alembic import op


revision = '0016i14'
down_revision = '0015i22'
branch_labels = None
depends_on = None

_OLD = {'ix_ledger_content_url_key': 'url_key', 'ix_ledger_content_sha256': 'sha256',
        'ix_ledger_content_md5': 'md5', 'ix_ledger_content_uploader': 'uploader_id'}
_NEW = {'ix_ledger_content_url_prefix': 'url_key', 'ix_ledger_content_sha256_prefix': 'sha256',
        'ix_ledger_content_md5_prefix': 'md5'}


def upgrade() -> None:
    for name in _OLD:
        op.drop_index(name, table_name='ledger_content')
    for name, column in _NEW.items():
        present = sa.text(f"{column} IS NOT NULL")
        op.create_index(name, 'ledger_content', [sa.text(f"substr({column}, 1, 16)")], unique=False,
                        sqlite_where=present, postgresql_where=present)


def downgrade() -> None:
    for name in _NEW:
        op.drop_index(name, table_name='ledger_content')
    for name, column in _OLD.items():
        op.create_index(name, 'ledger_content', [column], unique=False)
