"""volume_type_encryption: a volume type's encryption spec (Cinder's /types/{id}/encryption)

Revision ID: 0023_volume_type_encryption
Revises: 0022_volume_groups
Create Date: 2026-12-02 07:00:00
"""
import sqlalchemy as sa
from alembic import op

import cumulo.core.db

revision = '0023_volume_type_encryption'
down_revision = '0022_volume_groups'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('volume_type', schema=None) as batch_op:
        batch_op.add_column(sa.Column('encryption', cumulo.core.db.JSONText(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('volume_type', schema=None) as batch_op:
        batch_op.drop_column('encryption')
