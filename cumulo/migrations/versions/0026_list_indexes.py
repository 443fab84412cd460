"""list_indexes: indexes for the image and port listings, which filter, sort and page in SQL

Revision ID: 0026_list_indexes
Revises: 0025_object_expiry
Create Date: 2026-12-03 12:30:00
"""
from alembic import op

revision = '0026_list_indexes'
down_revision = '0025_object_expiry'
branch_labels = None
depends_on = None

INDEXES = [
    # the default image order (newest first) and its seek past a marker
    ('ix_image_image_created_at_id', 'image_image', ['created_at', 'id']),
    ('ix_image_image_visibility', 'image_image', ['visibility']),
    ('ix_image_image_name', 'image_image', ['name']),
    # a project's ports in the default order, and everyone's (an admin's listing)
    ('ix_network_port_project_created', 'network_port', ['project_id', 'created_at', 'id']),
    ('ix_network_port_created_at_id', 'network_port', ['created_at', 'id']),
    ('ix_network_port_device_owner', 'network_port', ['device_owner']),
    # rules naming a group as their remote (the group's delete, the dataplane's member chains)
    ('ix_network_security_group_rule_remote_group_id', 'network_security_group_rule', ['remote_group_id']),
]


def upgrade() -> None:
    for name, table, columns in INDEXES:
        op.create_index(name, table, columns)


def downgrade() -> None:
    for name, table, _ in reversed(INDEXES):
        op.drop_index(name, table_name=table)
