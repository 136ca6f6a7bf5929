"""review: users, sessions, cases, decisions, audit log, webhooks

Revision ID: 0003
Revises: 0002

Console users and sessions, cases with their items, decisions and reveals (the exposure log).
The audit log, webhooks and vault tables come in 0005.
"""
from alembic import op  # noqa: F401
import sqlalchemy as sa  # noqa: F401


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')
_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table('users',
    sa.Column('id', _ID, autoincrement=True, nullable=False),
    sa.Column('username', sa.String(length=100), nullable=False),
    sa.Column('password_hash', sa.String(length=255), nullable=False),
    sa.Column('role', sa.String(length=20), nullable=False),
    sa.Column('disabled', sa.Boolean(), nullable=False),
    sa.Column('created_at', _TS, nullable=False),
    sa.Column('last_login_at', _TS, nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_users')),
    sa.UniqueConstraint('username', name=op.f('uq_users_username'))
    )
    op.create_table('console_sessions',
    sa.Column('id', _ID, autoincrement=True, nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('user_id', _ID, nullable=False),
    sa.Column('csrf_token', sa.String(length=64), nullable=False),
    sa.Column('created_at', _TS, nullable=False),
    sa.Column('expires_at', _TS, nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_console_sessions_user_id_users'),
                            ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_console_sessions')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_console_sessions_token_hash'))
    )
    with op.batch_alter_table('console_sessions', schema=None) as batch_op:
        batch_op.create_index('ix_console_sessions_user', ['user_id'], unique=False)

    op.create_table('cases',
    sa.Column('id', _ID, autoincrement=True, nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('queue', sa.String(length=100), nullable=False),
    sa.Column('priority', sa.Integer(), nullable=False),
    sa.Column('uploader_id', sa.String(length=200), nullable=True),
    sa.Column('group_key', sa.String(length=400), nullable=False),
    sa.Column('source', sa.String(length=20), nullable=False),
    sa.Column('submitted_by', sa.String(length=200), nullable=True),
    sa.Column('note', sa.Text(), nullable=False),
    sa.Column('created_at', _TS, nullable=False),
    sa.Column('updated_at', _TS, nullable=False),
    sa.Column('sla_due_at', _TS, nullable=False),
    sa.Column('claimed_by', sa.String(length=100), nullable=True),
    sa.Column('claimed_at', _TS, nullable=True),
    sa.Column('claim_expires_at', _TS, nullable=True),
    sa.Column('decided_at', _TS, nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_cases'))
    )
    with op.batch_alter_table('cases', schema=None) as batch_op:
        batch_op.create_index('ix_cases_status_priority', ['status', 'priority', 'sla_due_at'], unique=False)
        batch_op.create_index('ix_cases_group_key', ['group_key'], unique=False)

    op.create_table('case_items',
    sa.Column('id', _ID, autoincrement=True, nullable=False),
    sa.Column('case_id', _ID, nullable=False),
    sa.Column('content_sha256', sa.String(length=64), nullable=True),
    sa.Column('content_type', sa.String(length=20), nullable=False),
    sa.Column('media_type', sa.String(length=100), nullable=True),
    sa.Column('md5', sa.String(length=32), nullable=True),
    sa.Column('pdq', sa.String(length=64), nullable=True),
    sa.Column('pdq_quality', sa.Integer(), nullable=True),
    sa.Column('matches', sa.JSON(), nullable=False),
    sa.Column('evidence', sa.JSON(), nullable=False),
    sa.Column('vault_item_id', sa.String(length=100), nullable=True),
    sa.Column('added_at', _TS, nullable=False),
    sa.ForeignKeyConstraint(['case_id'], ['cases.id'], name=op.f('fk_case_items_case_id_cases'),
                            ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_case_items'))
    )
    with op.batch_alter_table('case_items', schema=None) as batch_op:
        batch_op.create_index('ix_case_items_case', ['case_id'], unique=False)
        batch_op.create_index('ix_case_items_sha256', ['content_sha256'], unique=False)

    op.create_table('decisions',
    sa.Column('id', _ID, autoincrement=True, nullable=False),
    sa.Column('case_id', _ID, nullable=False),
    sa.Column('reviewer', sa.String(length=100), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('bank', sa.String(length=200), nullable=True),
    sa.Column('status', sa.String(length=32), nullable=False),
    sa.Column('note', sa.Text(), nullable=False),
    sa.Column('created_at', _TS, nullable=False),
    sa.Column('second_reviewer', sa.String(length=100), nullable=True),
    sa.Column('reviewed_at', _TS, nullable=True),
    sa.Column('applied_at', _TS, nullable=True),
    sa.Column('result', sa.JSON(), nullable=False),
    sa.ForeignKeyConstraint(['case_id'], ['cases.id'], name=op.f('fk_decisions_case_id_cases'),
                            ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_decisions'))
    )
    with op.batch_alter_table('decisions', schema=None) as batch_op:
        batch_op.create_index('ix_decisions_case', ['case_id'], unique=False)
        batch_op.create_index('ix_decisions_status', ['status'], unique=False)

    op.create_table('reveals',
    sa.Column('id', _ID, autoincrement=True, nullable=False),
    sa.Column('reviewer', sa.String(length=100), nullable=False),
    sa.Column('item_id', _ID, nullable=False),
    sa.Column('case_id', sa.BigInteger(), nullable=False),
    sa.Column('at', _TS, nullable=False),
    sa.ForeignKeyConstraint(['item_id'], ['case_items.id'], name=op.f('fk_reveals_item_id_case_items'),
                            ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_reveals'))
    )
    with op.batch_alter_table('reveals', schema=None) as batch_op:
        batch_op.create_index('ix_reveals_reviewer_at', ['reviewer', 'at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('reveals', schema=None) as batch_op:
        batch_op.drop_index('ix_reveals_reviewer_at')
    op.drop_table('reveals')
    with op.batch_alter_table('decisions', schema=None) as batch_op:
        batch_op.drop_index('ix_decisions_status')
        batch_op.drop_index('ix_decisions_case')
    op.drop_table('decisions')
    with op.batch_alter_table('case_items', schema=None) as batch_op:
        batch_op.drop_index('ix_case_items_sha256')
        batch_op.drop_index('ix_case_items_case')
    op.drop_table('case_items')
    with op.batch_alter_table('cases', schema=None) as batch_op:
        batch_op.drop_index('ix_cases_group_key')
        batch_op.drop_index('ix_cases_status_priority')
    op.drop_table('cases')
    with op.batch_alter_table('console_sessions', schema=None) as batch_op:
        batch_op.drop_index('ix_console_sessions_user')
    op.drop_table('console_sessions')
    op.drop_table('users')
