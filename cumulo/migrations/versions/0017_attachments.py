"""attachments: block storage's volume attachments and compute's block device mappings

Revision ID: 0017_attachments
Revises: 0016_volume
Create Date: 2026-12-01 23:50:00
"""
from alembic import op
import sqlalchemy as sa
import cumulo.core.db


revision = '0017_attachments'
down_revision = '0016_volume'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('volume_attachment',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('volume_id', sa.String(length=36), nullable=False),
    sa.Column('project_id', sa.String(length=64), nullable=False),
    sa.Column('instance_uuid', sa.String(length=36), nullable=True),
    sa.Column('status', sa.String(length=32), nullable=False),
    sa.Column('attach_mode', sa.String(length=8), nullable=False),
    sa.Column('attached_host', sa.String(length=255), nullable=True),
    sa.Column('mountpoint', sa.String(length=255), nullable=True),
    sa.Column('connector', cumulo.core.db.JSONText(), nullable=True),
    sa.Column('connection_info', cumulo.core.db.JSONText(), nullable=True),
    sa.Column('attached_at', cumulo.core.db.UTCDateTime(), nullable=True),
    sa.Column('created_at', cumulo.core.db.UTCDateTime(), nullable=False),
    sa.Column('updated_at', cumulo.core.db.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_volume_attachment'))
    )
    with op.batch_alter_table('volume_attachment', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_volume_attachment_volume_id'), ['volume_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_volume_attachment_project_id'), ['project_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_volume_attachment_instance_uuid'), ['instance_uuid'], unique=False)

    op.create_table('compute_block_device_mapping',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('server_id', sa.String(length=36), nullable=False),
    sa.Column('volume_id', sa.String(length=36), nullable=False),
    sa.Column('attachment_id', sa.String(length=36), nullable=True),
    sa.Column('device_name', sa.String(length=255), nullable=True),
    sa.Column('boot_index', sa.Integer(), nullable=True),
    sa.Column('source_type', sa.String(length=16), nullable=False),
    sa.Column('destination_type', sa.String(length=16), nullable=False),
    sa.Column('delete_on_termination', sa.Boolean(), nullable=False),
    sa.Column('tag', sa.String(length=60), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('connection_info', cumulo.core.db.JSONText(), nullable=True),
    sa.Column('lease_owner', sa.String(length=64), nullable=True),
    sa.Column('lease_until', cumulo.core.db.UTCDateTime(), nullable=True),
    sa.Column('created_at', cumulo.core.db.UTCDateTime(), nullable=False),
    sa.Column('updated_at', cumulo.core.db.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_compute_block_device_mapping')),
    sa.UniqueConstraint('server_id', 'volume_id', name=op.f('uq_compute_block_device_mapping_server_id'))
    )
    with op.batch_alter_table('compute_block_device_mapping', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_compute_block_device_mapping_server_id'), ['server_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_compute_block_device_mapping_volume_id'), ['volume_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_compute_block_device_mapping_lease_until'), ['lease_until'],
                              unique=False)


def downgrade() -> None:
    op.drop_table('compute_block_device_mapping')
    op.drop_table('volume_attachment')
