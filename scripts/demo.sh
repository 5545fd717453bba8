#!/usr/bin/env bash
# The pg_zdm demo on a fresh Debian 12 machine: set-up, release build installed
# into the system PostgreSQL, then a throwaway cluster with a real migration
# under live load and a report. Options go to the demo: --rows N, --keep.
set -euo pipefail
export PATH="$HOME/.cargo/bin:$PATH"
cd "$(dirname "$0")/.."
scripts/setup.sh
PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}
if [ "$(id -u)" -eq 0 ]; then
    cargo pgrx install --release --pg-config "$PG_CONFIG"
else
    cargo pgrx install --release --sudo --pg-config "$PG_CONFIG"
fi
ZDM_PG_CONFIG="$PG_CONFIG" cargo run --release -q -p zdm_harness --bin zdm-demo -- "$@"
