"""volume_groups: block storage's groups, group types, group snapshots

Revision ID: 0022_volume_groups
Revises: 0021_volume_transfers
Create Date: 2026-12-02 06:30:00
"""
from alembic import op
import sqlalchemy as sa
import cumulo.core.db


revision = '0022_volume_groups'
down_revision = '0021_volume_transfers'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('volume_group_type',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('description', sa.String(length=255), nullable=True),
    sa.Column('is_public', sa.Boolean(), nullable=False),
    sa.Column('group_specs', cumulo.core.db.JSONText(), nullable=False),
    sa.Column('created_at', cumulo.core.db.UTCDateTime(), nullable=False),
    sa.Column('updated_at', cumulo.core.db.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_volume_group_type')),
    sa.UniqueConstraint('name', name=op.f('uq_volume_group_type_name'))
    )
    with op.batch_alter_table('volume_group_type', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_volume_group_type_created_at'), ['created_at'], unique=False)

    op.create_table('volume_group',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=True),
    sa.Column('description', sa.String(length=255), nullable=True),
    sa.Column('status', sa.String(length=32), nullable=False),
    sa.Column('project_id', sa.String(length=64), nullable=False),
    sa.Column('user_id', sa.String(length=64), nullable=False),
    sa.Column('availability_zone', sa.String(length=255), nullable=False),
    sa.Column('group_type_id', sa.String(length=36), nullable=False),
    sa.Column('volume_type_ids', cumulo.core.db.JSONText(), nullable=False),
    sa.Column('host', sa.String(length=255), nullable=True),
    sa.Column('group_snapshot_id', sa.String(length=36), nullable=True),
    sa.Column('source_group_id', sa.String(length=36), nullable=True),
    sa.Column('replication_status', sa.String(length=32), nullable=False),
    sa.Column('fault', sa.Text(), nullable=True),
    sa.Column('lease_owner', sa.String(length=64), nullable=True),
    sa.Column('lease_until', cumulo.core.db.UTCDateTime(), nullable=True),
    sa.Column('created_at', cumulo.core.db.UTCDateTime(), nullable=False),
    sa.Column('updated_at', cumulo.core.db.UTCDateTime(), nullable=False),
    sa.Column('deleted', sa.Boolean(), nullable=False),
    sa.Column('deleted_at', cumulo.core.db.UTCDateTime(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_volume_group'))
    )
    with op.batch_alter_table('volume_group', schema=None) as batch_op:
        for column in ('status', 'project_id', 'group_type_id', 'group_snapshot_id', 'source_group_id',
                       'lease_until', 'created_at', 'deleted'):
            batch_op.create_index(batch_op.f(f'ix_volume_group_{column}'), [column], unique=False)

    op.create_table('volume_group_snapshot',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('group_id', sa.String(length=36), nullable=False),
    sa.Column('group_type_id', sa.String(length=36), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=True),
    sa.Column('description', sa.String(length=255), nullable=True),
    sa.Column('status', sa.String(length=32), nullable=False),
    sa.Column('project_id', sa.String(length=64), nullable=False),
    sa.Column('user_id', sa.String(length=64), nullable=False),
    sa.Column('fault', sa.Text(), nullable=True),
    sa.Column('lease_owner', sa.String(length=64), nullable=True),
    sa.Column('lease_until', cumulo.core.db.UTCDateTime(), nullable=True),
    sa.Column('created_at', cumulo.core.db.UTCDateTime(), nullable=False),
    sa.Column('updated_at', cumulo.core.db.UTCDateTime(), nullable=False),
    sa.Column('deleted', sa.Boolean(), nullable=False),
    sa.Column('deleted_at', cumulo.core.db.UTCDateTime(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_volume_group_snapshot'))
    )
    with op.batch_alter_table('volume_group_snapshot', schema=None) as batch_op:
        for column in ('group_id', 'status', 'project_id', 'lease_until', 'created_at', 'deleted'):
            batch_op.create_index(batch_op.f(f'ix_volume_group_snapshot_{column}'), [column], unique=False)

    with op.batch_alter_table('volume_volume', schema=None) as batch_op:
        batch_op.add_column(sa.Column('group_id', sa.String(length=36), nullable=True))
        batch_op.create_index(batch_op.f('ix_volume_volume_group_id'), ['group_id'], unique=False)
    with op.batch_alter_table('volume_snapshot', schema=None) as batch_op:
        batch_op.add_column(sa.Column('group_snapshot_id', sa.String(length=36), nullable=True))
        batch_op.create_index(batch_op.f('ix_volume_snapshot_group_snapshot_id'), ['group_snapshot_id'],
                              unique=False)


def downgrade() -> None:
    with op.batch_alter_table('volume_snapshot', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_volume_snapshot_group_snapshot_id'))
        batch_op.drop_column('group_snapshot_id')
    with op.batch_alter_table('volume_volume', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_volume_volume_group_id'))
        batch_op.drop_column('group_id')
    op.drop_table('volume_group_snapshot')
    op.drop_table('volume_group')
    op.drop_table('volume_group_type')
