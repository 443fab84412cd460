"""network_rbac_scopes: RBAC policies, address scopes and the network agents

Revision ID: 0027_network_rbac_scopes
Revises: 0026_list_indexes
Create Date: 2026-12-03 17:00:00
"""

revision = '0027_network_rbac_scopes'
down_revision = '0026_list_indexes'
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
