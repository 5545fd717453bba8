"""users.name becomes full_name: expand, migrate (pg_zdm rename_column)"""
import sqlalchemy as sa
from alembic import op
from zdm_alembic import top_level

revision = "0001_users_full_name"
down_revision = None
branch_labels = None
depends_on = None


def upgrade():
    # Expand, in this migration's transaction. Same spec again returns the name.
    op.execute(sa.text("SELECT zdm.rename_column('public.users', 'name', 'full_name', 'users_full_name')"))
    top_level("users_full_name")


def downgrade():
    # The table exactly as before; a no-op (NOTICE) when already rolled back.
    op.execute(sa.text("SELECT zdm.rollback('users_full_name')"))
