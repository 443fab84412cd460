"""agent_versions: the code version each compute service, volume pool and network agent reports

Revision ID: 0032_agent_versions
Revises: 0031_network_metering
Create Date: 2026-12-04 19:45:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0032_agent_versions'
down_revision = '0031_network_metering'
branch_labels = None
depends_on = None

TABLES = ('compute_service', 'volume_pool', 'network_agent')


def upgrade() -> None:
    # expand only: a nullable column an older controller never writes (NULL = an agent from
    # before versioned reports), so old and new controllers run side by side
    for table in TABLES:
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column('version', sa.String(length=32), nullable=True))


def downgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table) as batch:
            batch.drop_column('version')
