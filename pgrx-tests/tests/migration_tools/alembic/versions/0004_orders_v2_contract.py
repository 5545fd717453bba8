"""contract: the old orders dropped; then an index on currency, built CONCURRENTLY"""
import sqlalchemy as sa
from alembic import op
from zdm_alembic import top_level

revision = "0004_orders_v2_contract"
down_revision = "0003_users_full_name_contract"
branch_labels = None
depends_on = None


def upgrade():
    op.execute(sa.text("SELECT zdm.complete('orders_v2')"))
    op.execute(sa.text(
        "SELECT zdm.create_index('public.orders', 'orders_currency_idx', '(currency)', 'orders_currency_idx')"
    ))
    top_level("orders_currency_idx")
    op.execute(sa.text("SELECT zdm.complete('orders_currency_idx')"))


def downgrade():
    raise RuntimeError("orders_v2 is completed: the old orders table is gone; write a new migration instead")
