"""compute_consoles: remote console tokens and compute extras

Revision ID: 0029_compute_consoles
Revises: 0028_network_trunks_qos
Create Date: 2026-12-03 17:00:00
"""

revision = '0029_compute_consoles'
down_revision = '0028_network_trunks_qos'
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
