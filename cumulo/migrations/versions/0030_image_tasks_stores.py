"""image_tasks_stores: image tasks, import and stores

Revision ID: 0030_image_tasks_stores
Revises: 0029_compute_consoles
Create Date: 2026-12-03 17:00:00
"""

revision = '0030_image_tasks_stores'
down_revision = '0029_compute_consoles'
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
