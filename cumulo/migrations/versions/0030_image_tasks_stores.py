"""image_tasks_stores: the stores holding an image's data, task results, the image cache; and
identity's limits no longer tied to their service by a foreign key (Keystone keeps a deleted
service's registered and project limits)

Revision ID: 0030_image_tasks_stores
Revises: 0029_compute_consoles
Create Date: 2026-12-03 17:00:00
"""
import sqlalchemy as sa
from alembic import op

import cumulo.core.db

revision = '0030_image_tasks_stores'
down_revision = '0029_compute_consoles'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('image_image', schema=None) as batch_op:
        batch_op.add_column(sa.Column('stores', sa.String(length=255), nullable=True))
    with op.batch_alter_table('image_task', schema=None) as batch_op:
        batch_op.add_column(sa.Column('result', cumulo.core.db.JSONText(), nullable=True))
        batch_op.create_index('ix_image_task_owner_created_at', ['owner', 'created_at'])
    op.create_table(
        'image_cache_entry',
        sa.Column('image_id', sa.String(length=36), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('size', sa.BigInteger(), nullable=False),
        sa.Column('hits', sa.Integer(), nullable=False),
        sa.Column('last_accessed', cumulo.core.db.UTCDateTime(), nullable=False),
        sa.Column('last_modified', cumulo.core.db.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint('image_id', name=op.f('pk_image_cache_entry')))
    with op.batch_alter_table('identity_registered_limit', schema=None) as batch_op:
        batch_op.drop_constraint('fk_identity_registered_limit_service_id_identity_service', type_='foreignkey')
    with op.batch_alter_table('identity_limit', schema=None) as batch_op:
        batch_op.drop_constraint('fk_identity_limit_service_id_identity_service', type_='foreignkey')


def downgrade() -> None:
    with op.batch_alter_table('identity_limit', schema=None) as batch_op:
        batch_op.create_foreign_key('fk_identity_limit_service_id_identity_service', 'identity_service',
                                    ['service_id'], ['id'])
    with op.batch_alter_table('identity_registered_limit', schema=None) as batch_op:
        batch_op.create_foreign_key('fk_identity_registered_limit_service_id_identity_service', 'identity_service',
                                    ['service_id'], ['id'])
    op.drop_table('image_cache_entry')
    with op.batch_alter_table('image_task', schema=None) as batch_op:
        batch_op.drop_index('ix_image_task_owner_created_at')
        batch_op.drop_column('result')
    with op.batch_alter_table('image_image', schema=None) as batch_op:
        batch_op.drop_column('stores')
