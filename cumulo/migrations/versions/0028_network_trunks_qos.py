"""network_trunks_qos: trunks and QoS policies

Revision ID: 0028_network_trunks_qos
Revises: 0027_network_rbac_scopes
Create Date: 2026-12-03 17:00:00
"""

revision = '0028_network_trunks_qos'
down_revision = '0027_network_rbac_scopes'
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
