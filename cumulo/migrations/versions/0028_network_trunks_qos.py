"""network_trunks_qos: trunks and QoS policies

Revision ID: 0028_network_trunks_qos
Revises: 0027_network_rbac_scopes
Create Date: 2026-12-03 17:00:00
"""
import sqlalchemy as sa
from alembic import op

import cumulo.core.db

revision = '0028_network_trunks_qos'
down_revision = '0027_network_rbac_scopes'
branch_labels = None
depends_on = None


def standard() -> list[sa.Column]:
    return [sa.Column('description', sa.String(length=255), nullable=False),
            sa.Column('tags', cumulo.core.db.JSONText(), nullable=False),
            sa.Column('revision_number', sa.Integer(), nullable=False),
            sa.Column('created_at', cumulo.core.db.UTCDateTime(), nullable=False),
            sa.Column('updated_at', cumulo.core.db.UTCDateTime(), nullable=False)]


def upgrade() -> None:
    op.create_table(
        'network_qos_policy',
        sa.Column('id', sa.String(length=36), nullable=False),
        sa.Column('name', sa.String(length=255), nullable=False),
        sa.Column('project_id', sa.String(length=64), nullable=False),
        sa.Column('shared', sa.Boolean(), nullable=False),
        sa.Column('is_default', sa.Boolean(), nullable=False),
        *standard(),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_network_qos_policy')))
    op.create_index(op.f('ix_network_qos_policy_project_id'), 'network_qos_policy', ['project_id'])
    op.create_table(
        'network_qos_rule',
        sa.Column('id', sa.String(length=36), nullable=False),
        sa.Column('policy_id', sa.String(length=36), nullable=False),
        sa.Column('kind', sa.String(length=32), nullable=False),
        sa.Column('direction', sa.String(length=8), nullable=False),
        sa.Column('max_kbps', sa.Integer(), nullable=True),
        sa.Column('max_burst_kbps', sa.Integer(), nullable=True),
        sa.Column('min_kbps', sa.Integer(), nullable=True),
        sa.Column('dscp_mark', sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_network_qos_rule')),
        sa.UniqueConstraint('policy_id', 'kind', 'direction', name='uq_network_qos_rule_kind'))
    op.create_index(op.f('ix_network_qos_rule_policy_id'), 'network_qos_rule', ['policy_id'])
    op.create_table(
        'network_qos_binding',
        sa.Column('object_id', sa.String(length=36), nullable=False),
        sa.Column('object_type', sa.String(length=16), nullable=False),
        sa.Column('policy_id', sa.String(length=36), nullable=False),
        sa.PrimaryKeyConstraint('object_id', name=op.f('pk_network_qos_binding')))
    op.create_index(op.f('ix_network_qos_binding_policy_id'), 'network_qos_binding', ['policy_id'])
    op.create_table(
        'network_trunk',
        sa.Column('id', sa.String(length=36), nullable=False),
        sa.Column('name', sa.String(length=255), nullable=False),
        sa.Column('project_id', sa.String(length=64), nullable=False),
        sa.Column('port_id', sa.String(length=36), nullable=False),
        sa.Column('admin_state_up', sa.Boolean(), nullable=False),
        *standard(),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_network_trunk')),
        sa.UniqueConstraint('port_id', name=op.f('uq_network_trunk_port_id')))
    op.create_index(op.f('ix_network_trunk_project_id'), 'network_trunk', ['project_id'])
    op.create_table(
        'network_trunk_subport',
        sa.Column('port_id', sa.String(length=36), nullable=False),
        sa.Column('trunk_id', sa.String(length=36), nullable=False),
        sa.Column('segmentation_type', sa.String(length=32), nullable=False),
        sa.Column('segmentation_id', sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint('port_id', name=op.f('pk_network_trunk_subport')),
        sa.UniqueConstraint('trunk_id', 'segmentation_type', 'segmentation_id',
                            name='uq_network_trunk_subport_segment'))
    op.create_index(op.f('ix_network_trunk_subport_trunk_id'), 'network_trunk_subport', ['trunk_id'])


def downgrade() -> None:
    for table in ('network_trunk_subport', 'network_trunk', 'network_qos_binding', 'network_qos_rule',
                  'network_qos_policy'):
        op.drop_table(table)
