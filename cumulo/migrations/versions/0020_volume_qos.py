"""volume_qos: block storage's QoS specs, their type associations

Revision ID: 0020_volume_qos
Revises: 0019_volume_backups
Create Date: 2026-12-02 06:30:00
"""
from alembic import op  # noqa: F401
import sqlalchemy as sa  # noqa: F401
import cumulo.core.db  # noqa: F401


revision = '0020_volume_qos'
down_revision = '0019_volume_backups'
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
