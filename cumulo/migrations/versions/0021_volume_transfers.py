"""volume_transfers: block storage's volume transfers

Revision ID: 0021_volume_transfers
Revises: 0020_volume_qos
Create Date: 2026-12-02 06:30:00
"""
from alembic import op  # noqa: F401
import sqlalchemy as sa  # noqa: F401
import cumulo.core.db  # noqa: F401


revision = '0021_volume_transfers'
down_revision = '0020_volume_qos'
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
