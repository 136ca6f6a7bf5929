"""Notices (TAKE IT DOWN Act, DSA Art. 16), their locations and events, and statements of
reasons for the DSA Transparency Database (issue 14 points 3 and 4)

Revision ID: 0013i14
Revises: 0012i15
"""
from alembic import op
import sqlalchemy as sa


revision = '0013i14'
down_revision = '0012i15'
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')
TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        'notices',
        sa.Column('id', BigId, autoincrement=True, nullable=False),
        sa.Column('number', sa.String(length=24), nullable=False),
        sa.Column('regime', sa.String(length=20), nullable=False),
        sa.Column('status', sa.String(length=20), nullable=False),
        sa.Column('channel', sa.String(length=10), nullable=False),
        sa.Column('submitted_by', sa.String(length=200), nullable=False),
        sa.Column('category', sa.String(length=20), nullable=False),
        sa.Column('notifier_name', sa.String(length=300), nullable=True),
        sa.Column('notifier_email', sa.String(length=320), nullable=True),
        sa.Column('notifier_contact', sa.String(length=500), nullable=True),
        sa.Column('signature', sa.String(length=300), nullable=True),
        sa.Column('explanation', sa.Text(), nullable=True),
        sa.Column('good_faith', sa.Boolean(), nullable=False),
        sa.Column('lang', sa.String(length=8), nullable=False),
        sa.Column('missing', sa.JSON(), nullable=False),
        sa.Column('completion_hash', sa.String(length=64), nullable=True),
        sa.Column('image_sha256', sa.String(length=64), nullable=True),
        sa.Column('image_md5', sa.String(length=32), nullable=True),
        sa.Column('image_pdq', sa.String(length=64), nullable=True),
        sa.Column('image_vault_item_id', sa.String(length=64), nullable=True),
        sa.Column('received_at', TS, nullable=False),
        sa.Column('valid_at', TS, nullable=True),
        sa.Column('due_at', TS, nullable=True),
        sa.Column('escalate_at', TS, nullable=True),
        sa.Column('escalated_at', TS, nullable=True),
        sa.Column('case_id', BigId, nullable=True),
        sa.Column('duplicate_of', BigId, nullable=True),
        sa.Column('decision', sa.String(length=20), nullable=True),
        sa.Column('decision_ground', sa.String(length=20), nullable=True),
        sa.Column('decision_reference', sa.String(length=500), nullable=True),
        sa.Column('decision_explanation', sa.Text(), nullable=True),
        sa.Column('automated', sa.Boolean(), nullable=False),
        sa.Column('decided_by', sa.String(length=200), nullable=True),
        sa.Column('decided_at', TS, nullable=True),
        sa.Column('rejection_reason', sa.Text(), nullable=True),
        sa.Column('updated_at', TS, nullable=False),
        sa.ForeignKeyConstraint(['case_id'], ['cases.id'], name='fk_notices_case_id_cases', ondelete='SET NULL'),
        sa.ForeignKeyConstraint(['duplicate_of'], ['notices.id'], name='fk_notices_duplicate_of_notices',
                                ondelete='SET NULL'),
        sa.PrimaryKeyConstraint('id', name='pk_notices'),
        sa.UniqueConstraint('number', name='uq_notices_number'),
    )
    op.create_index('ix_notices_status_due', 'notices', ['status', 'due_at'])
    op.create_index('ix_notices_case', 'notices', ['case_id'])
    op.create_index('ix_notices_received', 'notices', ['received_at'])
    op.create_table(
        'notice_locations',
        sa.Column('id', BigId, autoincrement=True, nullable=False),
        sa.Column('notice_id', BigId, nullable=False),
        sa.Column('location', sa.Text(), nullable=False),
        sa.Column('content_id', sa.String(length=200), nullable=True),
        sa.Column('url', sa.Text(), nullable=True),
        sa.Column('uploader_id', sa.String(length=200), nullable=True),
        sa.Column('sha256', sa.String(length=64), nullable=True),
        sa.Column('md5', sa.String(length=32), nullable=True),
        sa.Column('pdq', sa.String(length=64), nullable=True),
        sa.Column('resolved', sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(['notice_id'], ['notices.id'], name='fk_notice_locations_notice_id_notices',
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name='pk_notice_locations'),
    )
    op.create_index('ix_notice_locations_notice', 'notice_locations', ['notice_id'])
    op.create_index('ix_notice_locations_content', 'notice_locations', ['content_id'])
    op.create_table(
        'notice_events',
        sa.Column('id', BigId, autoincrement=True, nullable=False),
        sa.Column('notice_id', BigId, nullable=False),
        sa.Column('at', TS, nullable=False),
        sa.Column('kind', sa.String(length=30), nullable=False),
        sa.Column('actor', sa.String(length=200), nullable=False),
        sa.Column('detail', sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(['notice_id'], ['notices.id'], name='fk_notice_events_notice_id_notices',
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name='pk_notice_events'),
    )
    op.create_index('ix_notice_events_notice', 'notice_events', ['notice_id'])
    op.create_table(
        'statements_of_reasons',
        sa.Column('id', BigId, autoincrement=True, nullable=False),
        sa.Column('puid', sa.String(length=200), nullable=False),
        sa.Column('notice_id', BigId, nullable=True),
        sa.Column('case_id', BigId, nullable=True),
        sa.Column('content_id', sa.String(length=200), nullable=True),
        sa.Column('uploader_id', sa.String(length=200), nullable=True),
        sa.Column('restriction', sa.String(length=20), nullable=False),
        sa.Column('source', sa.String(length=20), nullable=False),
        sa.Column('automated_detection', sa.Boolean(), nullable=False),
        sa.Column('automated_decision', sa.String(length=20), nullable=False),
        sa.Column('body', sa.JSON(), nullable=False),
        sa.Column('redress', sa.Text(), nullable=False),
        sa.Column('created_at', TS, nullable=False),
        sa.Column('tdb_status', sa.String(length=20), nullable=False),
        sa.Column('tdb_uuid', sa.String(length=64), nullable=True),
        sa.Column('tdb_submitted_at', TS, nullable=True),
        sa.Column('tdb_attempts', sa.Integer(), nullable=False),
        sa.Column('tdb_error', sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(['notice_id'], ['notices.id'], name='fk_statements_of_reasons_notice_id_notices',
                                ondelete='SET NULL'),
        sa.PrimaryKeyConstraint('id', name='pk_statements_of_reasons'),
        sa.UniqueConstraint('puid', name='uq_statements_of_reasons_puid'),
    )
    op.create_index('ix_statements_of_reasons_notice', 'statements_of_reasons', ['notice_id'])
    op.create_index('ix_statements_of_reasons_tdb', 'statements_of_reasons', ['tdb_status', 'id'])
    op.create_index('ix_statements_of_reasons_created', 'statements_of_reasons', ['created_at'])


def downgrade() -> None:
    op.drop_table('statements_of_reasons')
    op.drop_table('notice_events')
    op.drop_table('notice_locations')
    op.drop_table('notices')
