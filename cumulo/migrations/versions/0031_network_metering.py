"""network_metering: L3 metering labels and their rules

Revision ID: 0031_network_metering
Revises: 0030_image_tasks_stores
Create Date: 2026-12-03 18:00:00
"""
import sqlalchemy as sa
from alembic import op

import cumulo.core.db

revision = '0031_network_metering'
down_revision = '0030_image_tasks_stores'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'network_metering_label',
        sa.Column('id', sa.String(length=36), nullable=False),
        sa.Column('name', sa.String(length=255), nullable=False),
        sa.Column('description', sa.String(length=255), nullable=False),
        sa.Column('project_id', sa.String(length=64), nullable=False),
        sa.Column('shared', sa.Boolean(), nullable=False),
        sa.Column('created_at', cumulo.core.db.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_network_metering_label')))
    op.create_index(op.f('ix_network_metering_label_project_id'), 'network_metering_label', ['project_id'])
    op.create_table(
        'network_metering_label_rule',
        sa.Column('id', sa.String(length=36), nullable=False),
        sa.Column('label_id', sa.String(length=36), nullable=False),
        sa.Column('direction', sa.String(length=8), nullable=False),
        sa.Column('excluded', sa.Boolean(), nullable=False),
        sa.Column('remote_ip_prefix', sa.String(length=64), nullable=True),
        sa.Column('source_ip_prefix', sa.String(length=64), nullable=True),
        sa.Column('destination_ip_prefix', sa.String(length=64), nullable=True),
        sa.Column('created_at', cumulo.core.db.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_network_metering_label_rule')))
    op.create_index(op.f('ix_network_metering_label_rule_label_id'), 'network_metering_label_rule', ['label_id'])


def downgrade() -> None:
    op.drop_table('network_metering_label_rule')
    op.drop_table('network_metering_label')
