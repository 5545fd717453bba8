#!/usr/bin/env bash
# Every test layer of pg_zdm, on a fresh Debian 12 machine or an old one:
#   1. set-up (scripts/setup.sh: packages and cargo-pgrx, skipped when present)
#   2. unit tests and in-server #[pg_test]s: cargo pgrx test pg15
#   3. the release build installed into the system PostgreSQL
#   4. SQL-level tests as pg_regress pairs (scripts/regress.sh)
#   5. the external suite (pgrx-tests/): real clusters, concurrent sessions, faults
set -euo pipefail
export PATH="$HOME/.cargo/bin:$PATH"
cd "$(dirname "$0")/.."
scripts/setup.sh

PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}
PGDATA_TEST=${PGDATA_TEST:-/tmp/pg_zdm-pgrx-test}

# Every runner's output also goes to a log, summed up in one line at the end.
LOG=$(mktemp)
trap 'rm -f "$LOG"' EXIT
logged() { "$@" 2>&1 | tee -a "$LOG"; }

echo "== unit and in-server tests"
rm -rf "$PGDATA_TEST"
if [ "$(id -u)" -eq 0 ]; then
    logged cargo pgrx test pg15 --runas postgres --pgdata "$PGDATA_TEST"
else
    logged cargo pgrx test pg15
fi

echo "== install the release build"
if [ "$(id -u)" -eq 0 ]; then
    cargo pgrx install --release --pg-config "$PG_CONFIG"
else
    cargo pgrx install --release --sudo --pg-config "$PG_CONFIG"
fi

# Released versions' install scripts, for the upgrade test (cargo pgrx install
# copies only the upgrade scripts sql/pg_zdm--A--B.sql).
extdir="$("$PG_CONFIG" --sharedir)/extension"
if [ "$(id -u)" -eq 0 ]; then cp sql/released/pg_zdm--*.sql "$extdir/"; else sudo cp sql/released/pg_zdm--*.sql "$extdir/"; fi

echo "== SQL regression tests (pgrx-tests/regress)"
PG_CONFIG="$PG_CONFIG" logged scripts/regress.sh

echo "== external suite"
export ZDM_PG_CONFIG="$PG_CONFIG"
logged cargo test -p zdm_harness --tests -- --test-threads=2

passed=$(grep -oE '(test result: [a-zA-Z]+\.|regress:) [0-9]+ passed' "$LOG" | grep -oE '[0-9]+ passed' | awk '{s += $1} END {print s + 0}')
failed=$(grep -E 'test result:|regress:' "$LOG" | grep -oE '[0-9]+ failed' | awk '{s += $1} END {print s + 0}')
echo
echo "$passed passed, $failed failed"
