#!/usr/bin/env bash
# SQL-level tests as pg_regress pairs, as PostgreSQL's own and pg_graphql's:
# pgrx-tests/regress/sql/<name>.sql runs in psql against a throwaway cluster
# with pg_zdm created, and its output must equal expected/<name>.out.
# Needs the extension installed into $PG_CONFIG's server (scripts/test.sh
# does it first). ZDM_BLESS=1 writes the outputs over the expected files
# (read the diff before committing it).
set -euo pipefail
cd "$(dirname "$0")/.."
PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}
bindir=$("$PG_CONFIG" --bindir)
pg_regress="$(dirname "$("$PG_CONFIG" --pgxs)")/../test/regress/pg_regress"

# initdb refuses to run as root: the cluster and pg_regress run as postgres,
# in a directory of their own holding a copy of the test files.
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp -r pgrx-tests/regress/sql pgrx-tests/regress/expected "$work/"
as_server_user() {
    if [ "$(id -u)" -eq 0 ]; then
        chown -R postgres "$work"
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}
tests=$(cd pgrx-tests/regress/sql && ls ./*.sql | sed 's|^\./||; s|\.sql$||')
if [ "${ZDM_BLESS:-0}" = 1 ]; then
    for t in $tests; do touch "$work/expected/$t.out"; done
fi
status=0
as_server_user "$pg_regress" --bindir="$bindir" --temp-instance="$work/instance" \
    --inputdir="$work" --outputdir="$work/out" --dbname=zdm_regress \
    --load-extension=pg_zdm $tests > "$work/log" 2>&1 || status=$?
cat "$work/log"
if [ "${ZDM_BLESS:-0}" = 1 ]; then
    for t in $tests; do cp "$work/out/results/$t.out" "pgrx-tests/regress/expected/$t.out"; done
    echo "regress: expected outputs written; review them with git diff"
    exit 0
fi
[ -f "$work/out/regression.diffs" ] && cat "$work/out/regression.diffs"
passed=$(grep -cE '^(ok|test) .*\.\.\. ok|^ok [0-9]+' "$work/log" || true)
failed=$(grep -cE 'FAILED|failed \(ignored\)|^not ok' "$work/log" || true)
echo "regress: $passed passed, $failed failed"
exit $status
