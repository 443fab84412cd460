"""volume_image_meta: a volume's image metadata, migration status and running task; user messages

Revision ID: 0018_volume_image_meta
Revises: 0017_attachments
Create Date: 2026-12-02 00:05:00
"""
from alembic import op
import sqlalchemy as sa
import cumulo.core.db


revision = '0018_volume_image_meta'
down_revision = '0017_attachments'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('volume_volume', schema=None) as batch_op:
        batch_op.add_column(sa.Column('image_meta', cumulo.core.db.JSONText(), nullable=True))
        batch_op.add_column(sa.Column('migration_status', sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column('task', cumulo.core.db.JSONText(), nullable=True))

    op.create_table('volume_message',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('project_id', sa.String(length=64), nullable=False),
    sa.Column('request_id', sa.String(length=255), nullable=False),
    sa.Column('resource_type', sa.String(length=64), nullable=False),
    sa.Column('resource_uuid', sa.String(length=36), nullable=True),
    sa.Column('event_id', sa.String(length=64), nullable=False),
    sa.Column('message_level', sa.String(length=16), nullable=False),
    sa.Column('user_message', sa.Text(), nullable=False),
    sa.Column('created_at', cumulo.core.db.UTCDateTime(), nullable=False),
    sa.Column('expires_at', cumulo.core.db.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_volume_message'))
    )
    with op.batch_alter_table('volume_message', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_volume_message_project_id'), ['project_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_volume_message_resource_uuid'), ['resource_uuid'], unique=False)
        batch_op.create_index(batch_op.f('ix_volume_message_created_at'), ['created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_volume_message_expires_at'), ['expires_at'], unique=False)


def downgrade() -> None:
    op.drop_table('volume_message')
    with op.batch_alter_table('volume_volume', schema=None) as batch_op:
        batch_op.drop_column('task')
        batch_op.drop_column('migration_status')
        batch_op.drop_column('image_meta')
