"""volume_qos: block storage's QoS specs, their type associations

Revision ID: 0020_volume_qos
Revises: 0019_volume_backups
Create Date: 2026-12-02 06:30:00
"""
import sqlalchemy as sa
from alembic import op

import cumulo.core.db

revision = '0020_volume_qos'
down_revision = '0019_volume_backups'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('volume_qos_specs',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('consumer', sa.String(length=16), nullable=False),
    sa.Column('specs', cumulo.core.db.JSONText(), nullable=False),
    sa.Column('created_at', cumulo.core.db.UTCDateTime(), nullable=False),
    sa.Column('updated_at', cumulo.core.db.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_volume_qos_specs')),
    sa.UniqueConstraint('name', name=op.f('uq_volume_qos_specs_name'))
    )
    with op.batch_alter_table('volume_type', schema=None) as batch_op:
        batch_op.add_column(sa.Column('qos_specs_id', sa.String(length=36), nullable=True))
        batch_op.create_index(batch_op.f('ix_volume_type_qos_specs_id'), ['qos_specs_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('volume_type', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_volume_type_qos_specs_id'))
        batch_op.drop_column('qos_specs_id')
    op.drop_table('volume_qos_specs')
