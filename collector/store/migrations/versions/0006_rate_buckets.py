"""The API's per-key rate buckets on PostgreSQL, made by the migrations.

Before this revision the first request of an API replica made the table on demand
(``CREATE UNLOGGED TABLE IF NOT EXISTS``), so a store may already have it: this step is
idempotent and leaves an existing table (and its buckets) alone. UNLOGGED: a request costs
no WAL write; a server crash empties the buckets, which only loosens each limit for a
minute. SQLite stores have no such table: one API process keeps its buckets in memory.
"""

from __future__ import annotations

from alembic import op

revision = "0006_rate_buckets"
down_revision = "0005_entity_tables"
branch_labels = None
depends_on = None

TABLE = "api_rate_bucket"  # frozen here; collector.store.ratebuckets.RATE_BUCKETS names it


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(
        f"CREATE UNLOGGED TABLE IF NOT EXISTS {TABLE} (bucket text PRIMARY KEY, "
        "tat double precision NOT NULL, allowed boolean NOT NULL)"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"DROP TABLE IF EXISTS {TABLE}")
