"""volume_groups: block storage's groups, group types, group snapshots

Revision ID: 0022_volume_groups
Revises: 0021_volume_transfers
Create Date: 2026-12-02 06:30:00
"""
from alembic import op  # noqa: F401
import sqlalchemy as sa  # noqa: F401
import cumulo.core.db  # noqa: F401


revision = '0022_volume_groups'
down_revision = '0021_volume_transfers'
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
