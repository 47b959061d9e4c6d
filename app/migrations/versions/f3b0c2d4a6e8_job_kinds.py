"""job kinds

Revision ID: f3b0c2d4a6e8
Revises: e1d84e652e1d
Create Date: 2026-12-01 16:30:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'f3b0c2d4a6e8'
down_revision = 'e1d84e652e1d'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('job') as batch:
        batch.add_column(sa.Column('kind', sa.String(length=32), nullable=False, server_default='retrain'))


def downgrade():
    with op.batch_alter_table('job') as batch:
        batch.drop_column('kind')
