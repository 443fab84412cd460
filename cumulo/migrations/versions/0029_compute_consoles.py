"""compute_consoles: remote console tokens and compute extras

Revision ID: 0029_compute_consoles
Revises: 0028_network_trunks_qos
Create Date: 2026-12-03 17:00:00
"""

import sqlalchemy as sa
from alembic import op

import cumulo.core.db

revision = '0029_compute_consoles'
down_revision = '0028_network_trunks_qos'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('compute_console_token',
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('instance_uuid', sa.String(length=36), nullable=False),
    sa.Column('console_type', sa.String(length=16), nullable=False),
    sa.Column('host', sa.String(length=255), nullable=False),
    sa.Column('path', sa.String(length=255), nullable=False),
    sa.Column('expires_at', cumulo.core.db.UTCDateTime(), nullable=False),
    sa.Column('created_at', cumulo.core.db.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('token_hash', name=op.f('pk_compute_console_token'))
    )
    with op.batch_alter_table('compute_console_token', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_compute_console_token_instance_uuid'), ['instance_uuid'], unique=False)
        batch_op.create_index(batch_op.f('ix_compute_console_token_expires_at'), ['expires_at'], unique=False)


def downgrade() -> None:
    op.drop_table('compute_console_token')
