"""object_storage: accounts, containers and the object listing of the Swift v1 API

Revision ID: 0024_object_storage
Revises: 0023_volume_type_encryption
Create Date: 2026-12-02 20:00:00
"""
import sqlalchemy as sa
from alembic import op

import cumulo.core.db
from cumulo.object.models import ObjectName

revision = '0024_object_storage'
down_revision = '0023_volume_type_encryption'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'object_account',
        sa.Column('name', sa.String(255), primary_key=True),
        sa.Column('meta', cumulo.core.db.JSONText(), nullable=False),
        sa.Column('timestamp', sa.String(16), nullable=False))
    op.create_table(
        'object_container',
        sa.Column('id', sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column('account', sa.String(255), sa.ForeignKey('object_account.name'), nullable=False),
        sa.Column('name', sa.String(256), nullable=False),
        sa.Column('meta', cumulo.core.db.JSONText(), nullable=False),
        sa.Column('read_acl', sa.Text(), nullable=False),
        sa.Column('write_acl', sa.Text(), nullable=False),
        sa.Column('object_count', sa.BigInteger(), nullable=False),
        sa.Column('bytes_used', sa.BigInteger(), nullable=False),
        sa.Column('timestamp', sa.String(16), nullable=False),
        sa.UniqueConstraint('account', 'name', name='uq_object_container_account_name'))
    op.create_table(
        'object_entry',
        sa.Column('container_id', sa.Integer(), sa.ForeignKey('object_container.id', ondelete='CASCADE'),
                  primary_key=True),
        sa.Column('name', ObjectName(), primary_key=True),  # VARBINARY on MariaDB (key length)
        sa.Column('size', sa.BigInteger(), nullable=False),
        sa.Column('etag', sa.String(32), nullable=False),
        sa.Column('content_type', sa.String(256), nullable=False),
        sa.Column('timestamp', sa.String(16), nullable=False),
        sa.Column('meta', cumulo.core.db.JSONText(), nullable=False))


def downgrade() -> None:
    op.drop_table('object_entry')
    op.drop_table('object_container')
    op.drop_table('object_account')
