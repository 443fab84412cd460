"""network_rbac_scopes: RBAC policies, address scopes and the network agents

Revision ID: 0027_network_rbac_scopes
Revises: 0026_list_indexes
Create Date: 2026-12-03 17:00:00
"""
import uuid

import sqlalchemy as sa
from alembic import op

import cumulo.core.db

revision = '0027_network_rbac_scopes'
down_revision = '0026_list_indexes'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('network_rbac_policy',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('project_id', sa.String(length=64), nullable=False),
    sa.Column('object_type', sa.String(length=32), nullable=False),
    sa.Column('object_id', sa.String(length=36), nullable=False),
    sa.Column('action', sa.String(length=32), nullable=False),
    sa.Column('target_project', sa.String(length=255), nullable=False),
    sa.Column('created_at', cumulo.core.db.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_network_rbac_policy')),
    sa.UniqueConstraint('object_type', 'object_id', 'action', 'target_project',
                        name='uq_network_rbac_policy_entry')
    )
    with op.batch_alter_table('network_rbac_policy', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_network_rbac_policy_project_id'), ['project_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_network_rbac_policy_object_id'), ['object_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_network_rbac_policy_target_project'), ['target_project'], unique=False)
    op.create_table('network_address_scope',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('project_id', sa.String(length=64), nullable=False),
    sa.Column('ip_version', sa.Integer(), nullable=False),
    sa.Column('shared', sa.Boolean(), nullable=False),
    sa.Column('created_at', cumulo.core.db.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_network_address_scope'))
    )
    with op.batch_alter_table('network_address_scope', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_network_address_scope_project_id'), ['project_id'], unique=False)
    op.create_table('network_agent',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('agent_type', sa.String(length=64), nullable=False),
    sa.Column('binary', sa.String(length=64), nullable=False),
    sa.Column('topic', sa.String(length=64), nullable=False),
    sa.Column('host', sa.String(length=255), nullable=False),
    sa.Column('availability_zone', sa.String(length=255), nullable=True),
    sa.Column('admin_state_up', sa.Boolean(), nullable=False),
    sa.Column('description', sa.String(length=255), nullable=False),
    sa.Column('configurations', cumulo.core.db.JSONText(), nullable=False),
    sa.Column('started_at', cumulo.core.db.UTCDateTime(), nullable=False),
    sa.Column('created_at', cumulo.core.db.UTCDateTime(), nullable=False),
    sa.Column('heartbeat_at', cumulo.core.db.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_network_agent')),
    sa.UniqueConstraint('agent_type', 'host', name='uq_network_agent_type_host')
    )
    with op.batch_alter_table('network_agent', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_network_agent_host'), ['host'], unique=False)
    op.create_table('network_agent_binding',
    sa.Column('agent_id', sa.String(length=36), nullable=False),
    sa.Column('resource_id', sa.String(length=36), nullable=False),
    sa.Column('manual', sa.Boolean(), nullable=False),
    sa.PrimaryKeyConstraint('agent_id', 'resource_id', name=op.f('pk_network_agent_binding'))
    )
    with op.batch_alter_table('network_agent_binding', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_network_agent_binding_resource_id'), ['resource_id'], unique=False)
    with op.batch_alter_table('network_subnet_pool', schema=None) as batch_op:
        batch_op.add_column(sa.Column('address_scope_id', sa.String(length=36), nullable=True))
        batch_op.create_index(batch_op.f('ix_network_subnet_pool_address_scope_id'), ['address_scope_id'],
                              unique=False)
    # networks shared or external before RBAC policies existed get the wildcard entries Neutron
    # keeps for them, so every network's sharing is read from one place
    bind = op.get_bind()
    nets = sa.table('network_network', sa.column('id'), sa.column('project_id'), sa.column('shared'),
                    sa.column('external'))
    rbac = sa.table('network_rbac_policy', sa.column('id'), sa.column('project_id'), sa.column('object_type'),
                    sa.column('object_id'), sa.column('action'), sa.column('target_project'),
                    sa.column('created_at', cumulo.core.db.UTCDateTime()))
    now = cumulo.core.db.utcnow()
    rows = []
    for net_id, project_id, shared, external in bind.execute(sa.select(
            nets.c.id, nets.c.project_id, nets.c.shared, nets.c.external)).all():
        for flag, action in ((shared, 'access_as_shared'), (external, 'access_as_external')):
            if flag:
                rows.append({'id': str(uuid.uuid4()), 'project_id': project_id, 'object_type': 'network',
                             'object_id': net_id, 'action': action, 'target_project': '*', 'created_at': now})
    if rows:
        op.bulk_insert(rbac, rows)


def downgrade() -> None:
    with op.batch_alter_table('network_subnet_pool', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_network_subnet_pool_address_scope_id'))
        batch_op.drop_column('address_scope_id')
    op.drop_table('network_agent_binding')
    op.drop_table('network_agent')
    op.drop_table('network_address_scope')
    op.drop_table('network_rbac_policy')
