"""volume_backups: block storage's backups

Revision ID: 0019_volume_backups
Revises: 0018_volume_image_meta
Create Date: 2026-12-02 00:20:00
"""
from alembic import op
import sqlalchemy as sa
import cumulo.core.db


revision = '0019_volume_backups'
down_revision = '0018_volume_image_meta'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('volume_backup',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('volume_id', sa.String(length=36), nullable=False),
    sa.Column('project_id', sa.String(length=64), nullable=False),
    sa.Column('user_id', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=True),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('container', sa.String(length=255), nullable=False),
    sa.Column('status', sa.String(length=32), nullable=False),
    sa.Column('size', sa.Integer(), nullable=False),
    sa.Column('object_count', sa.Integer(), nullable=False),
    sa.Column('stored_bytes', sa.BigInteger(), nullable=False),
    sa.Column('parent_id', sa.String(length=36), nullable=True),
    sa.Column('data_id', sa.String(length=36), nullable=True),
    sa.Column('snapshot_id', sa.String(length=36), nullable=True),
    sa.Column('volume_meta', cumulo.core.db.JSONText(), nullable=True),
    sa.Column('availability_zone', sa.String(length=255), nullable=True),
    sa.Column('host', sa.String(length=255), nullable=True),
    sa.Column('meta', cumulo.core.db.JSONText(), nullable=False),
    sa.Column('fail_reason', sa.Text(), nullable=True),
    sa.Column('task', cumulo.core.db.JSONText(), nullable=True),
    sa.Column('lease_owner', sa.String(length=64), nullable=True),
    sa.Column('lease_until', cumulo.core.db.UTCDateTime(), nullable=True),
    sa.Column('data_timestamp', cumulo.core.db.UTCDateTime(), nullable=False),
    sa.Column('created_at', cumulo.core.db.UTCDateTime(), nullable=False),
    sa.Column('updated_at', cumulo.core.db.UTCDateTime(), nullable=False),
    sa.Column('deleted', sa.Boolean(), nullable=False),
    sa.Column('deleted_at', cumulo.core.db.UTCDateTime(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_volume_backup'))
    )
    with op.batch_alter_table('volume_backup', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_volume_backup_volume_id'), ['volume_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_volume_backup_project_id'), ['project_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_volume_backup_status'), ['status'], unique=False)
        batch_op.create_index(batch_op.f('ix_volume_backup_parent_id'), ['parent_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_volume_backup_data_id'), ['data_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_volume_backup_lease_until'), ['lease_until'], unique=False)
        batch_op.create_index(batch_op.f('ix_volume_backup_created_at'), ['created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_volume_backup_deleted'), ['deleted'], unique=False)


def downgrade() -> None:
    op.drop_table('volume_backup')
