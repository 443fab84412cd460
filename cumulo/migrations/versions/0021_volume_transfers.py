"""volume_transfers: block storage's volume transfers, a service's disabled reason and frozen flag

Revision ID: 0021_volume_transfers
Revises: 0020_volume_qos
Create Date: 2026-12-02 06:30:00
"""
import sqlalchemy as sa
from alembic import op

import cumulo.core.db

revision = '0021_volume_transfers'
down_revision = '0020_volume_qos'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('volume_transfer',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('volume_id', sa.String(length=36), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=True),
    sa.Column('salt', sa.String(length=64), nullable=False),
    sa.Column('crypt_hash', sa.String(length=128), nullable=False),
    sa.Column('no_snapshots', sa.Boolean(), nullable=False),
    sa.Column('source_project_id', sa.String(length=64), nullable=False),
    sa.Column('destination_project_id', sa.String(length=64), nullable=True),
    sa.Column('accepted', sa.Boolean(), nullable=False),
    sa.Column('created_at', cumulo.core.db.UTCDateTime(), nullable=False),
    sa.Column('updated_at', cumulo.core.db.UTCDateTime(), nullable=False),
    sa.Column('deleted', sa.Boolean(), nullable=False),
    sa.Column('deleted_at', cumulo.core.db.UTCDateTime(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_volume_transfer'))
    )
    with op.batch_alter_table('volume_transfer', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_volume_transfer_volume_id'), ['volume_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_volume_transfer_source_project_id'), ['source_project_id'],
                              unique=False)
        batch_op.create_index(batch_op.f('ix_volume_transfer_created_at'), ['created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_volume_transfer_deleted'), ['deleted'], unique=False)
    with op.batch_alter_table('volume_pool', schema=None) as batch_op:
        batch_op.add_column(sa.Column('disabled_reason', sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column('frozen', sa.Boolean(), server_default=sa.false(), nullable=False))


def downgrade() -> None:
    with op.batch_alter_table('volume_pool', schema=None) as batch_op:
        batch_op.drop_column('frozen')
        batch_op.drop_column('disabled_reason')
    op.drop_table('volume_transfer')
