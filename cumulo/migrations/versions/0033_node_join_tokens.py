"""node_join_tokens: the single-use tokens `cumulo node join` presents to fetch a node's settings

Revision ID: 0033_node_join_tokens
Revises: 0032_agent_versions
Create Date: 2026-12-04 23:20:00
"""
import sqlalchemy as sa
from alembic import op

from cumulo.core.db import UTCDateTime

revision = '0033_node_join_tokens'
down_revision = '0032_agent_versions'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # expand only: a new table an older controller never reads
    op.create_table(
        'identity_node_join_token',
        sa.Column('id', sa.String(length=32), nullable=False),
        sa.Column('secret_hash', sa.String(length=64), nullable=False),  # SHA-256 hex of the secret part
        sa.Column('roles', sa.String(length=255), nullable=False),  # the roles a join may ask for
        sa.Column('created_at', UTCDateTime(), nullable=False),
        sa.Column('expires_at', UTCDateTime(), nullable=False),
        sa.Column('used_at', UTCDateTime(), nullable=True),
        sa.Column('used_by', sa.String(length=255), nullable=True),  # the host that joined with it
        sa.PrimaryKeyConstraint('id', name=op.f('pk_identity_node_join_token')),
    )


def downgrade() -> None:
    op.drop_table('identity_node_join_token')
