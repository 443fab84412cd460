"""object_expiry: an object's X-Delete-At as an indexed column, so the expirer finds what is due

Revision ID: 0025_object_expiry
Revises: 0024_object_storage
Create Date: 2026-12-03 12:00:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0025_object_expiry'
down_revision = '0024_object_storage'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('object_entry', schema=None) as batch_op:
        batch_op.add_column(sa.Column('delete_at', sa.BigInteger(), nullable=True))
        batch_op.create_index('ix_object_entry_delete_at', ['delete_at'])


def downgrade() -> None:
    with op.batch_alter_table('object_entry', schema=None) as batch_op:
        batch_op.drop_index('ix_object_entry_delete_at')
        batch_op.drop_column('delete_at')
