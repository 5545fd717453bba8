"""contract: users.name dropped (once no application reads it)"""
import sqlalchemy as sa
from alembic import op

revision = "0003_users_full_name_contract"
down_revision = "0002_orders_v2"
branch_labels = None
depends_on = None


def upgrade():
    op.execute(sa.text("SELECT zdm.complete('users_full_name')"))


def downgrade():
    raise RuntimeError("users_full_name is completed: users.name is gone; write a new migration instead")
