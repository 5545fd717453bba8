"""orders restructured through a shadow table: expand, migrate, swap"""
import sqlalchemy as sa
from alembic import op
from zdm_alembic import top_level

revision = "0002_orders_v2"
down_revision = "0001_users_full_name"
branch_labels = None
depends_on = None


def upgrade():
    op.execute(sa.text(
        "SELECT zdm.create_shadow_table('public.orders', "
        "ARRAY['ALTER COLUMN amount TYPE numeric(10,2)', "
        "'ADD COLUMN currency varchar(3) NOT NULL DEFAULT ''EUR'''], NULL, 'orders_v2')"
    ))
    top_level("orders_v2", swap=True)


def downgrade():
    # After the swap, swaps back first; a no-op (NOTICE) when already rolled back.
    op.execute(sa.text("SELECT zdm.rollback('orders_v2')"))
