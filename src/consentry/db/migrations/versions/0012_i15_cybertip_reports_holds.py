"""NCMEC CyberTipline reports (one per case), preservation holds, and the console users'
``reporter`` permission (issue 15)

Revision ID: 0012i15
Revises: 0011i14
"""
from alembic import op
import sqlalchemy as sa


revision = '0012i15'
down_revision = '0011i14'
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('can_report', sa.Boolean(), nullable=False, server_default=sa.false()))
    op.create_table(
        'cybertip_reports',
        sa.Column('id', BigId, autoincrement=True, nullable=False),
        sa.Column('case_id', BigId, nullable=False),
        sa.Column('status', sa.String(length=20), nullable=False),
        sa.Column('environment', sa.String(length=20), nullable=False),
        sa.Column('details', sa.JSON(), nullable=False),
        sa.Column('report_xml', sa.Text(), nullable=False),
        sa.Column('files', sa.JSON(), nullable=False),
        sa.Column('ncmec_report_id', sa.String(length=40), nullable=True),
        sa.Column('drafted_by', sa.String(length=200), nullable=False),
        sa.Column('approved_by', sa.String(length=200), nullable=True),
        sa.Column('filed_by', sa.String(length=200), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('submitted_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('filed_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('retracted_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('lease_until', sa.DateTime(timezone=True), nullable=True),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('last_error', sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(['case_id'], ['cases.id'], name='fk_cybertip_reports_case_id_cases',
                                ondelete='RESTRICT'),
        sa.PrimaryKeyConstraint('id', name='pk_cybertip_reports'),
        sa.UniqueConstraint('case_id', name='uq_cybertip_reports_case_id'),
    )
    op.create_index('ix_cybertip_reports_status', 'cybertip_reports', ['status'])
    op.create_table(
        'preservation_holds',
        sa.Column('id', BigId, autoincrement=True, nullable=False),
        sa.Column('case_id', BigId, nullable=False),
        sa.Column('report_id', BigId, nullable=True),
        sa.Column('reason', sa.String(length=500), nullable=False),
        sa.Column('placed_by', sa.String(length=200), nullable=False),
        sa.Column('placed_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('scope', sa.JSON(), nullable=False),
        sa.Column('released_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('released_by', sa.String(length=200), nullable=True),
        sa.Column('release_reason', sa.String(length=1000), nullable=True),
        sa.ForeignKeyConstraint(['case_id'], ['cases.id'], name='fk_preservation_holds_case_id_cases',
                                ondelete='RESTRICT'),
        sa.ForeignKeyConstraint(['report_id'], ['cybertip_reports.id'],
                                name='fk_preservation_holds_report_id_cybertip_reports', ondelete='RESTRICT'),
        sa.PrimaryKeyConstraint('id', name='pk_preservation_holds'),
    )
    op.create_index('ix_preservation_holds_case', 'preservation_holds', ['case_id'])
    op.create_index('ix_preservation_holds_expires', 'preservation_holds', ['released_at', 'expires_at'])


def downgrade() -> None:
    op.drop_index('ix_preservation_holds_expires', table_name='preservation_holds')
    op.drop_index('ix_preservation_holds_case', table_name='preservation_holds')
    op.drop_table('preservation_holds')
    op.drop_index('ix_cybertip_reports_status', table_name='cybertip_reports')
    op.drop_table('cybertip_reports')
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_column('can_report')
