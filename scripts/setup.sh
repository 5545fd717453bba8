#!/usr/bin/env bash
# Installs what pg_zdm needs on Debian 12, skipping what is already there:
# PostgreSQL 15 (server, headers, pg_cron, pg_repack), clang, sudo, and
# cargo-pgrx 0.18.1 initialised against the system PostgreSQL; for the tests
# of the migration-tool recipes, sqitch (with DBD::Pg) from Debian and Alembic
# with psycopg2 from PyPI, in a virtualenv ($ZDM_VENV, default
# $HOME/.cache/pg_zdm/venv: Debian's python3 refuses pip outside one).
# Works as root, or as a user with sudo. Needs a Rust toolchain (rustup).
set -euo pipefail
export PATH="$HOME/.cargo/bin:$PATH"

PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}
PGRX_VERSION=0.18.1
PACKAGES=(postgresql-15 postgresql-server-dev-15 postgresql-15-cron postgresql-15-repack libclang-dev clang sudo
          sqitch libdbd-pg-perl python3-venv)
VENV=${ZDM_VENV:-$HOME/.cache/pg_zdm/venv}
ALEMBIC_PIN='alembic>=1.20,<1.21'
DRIVER_PIN='psycopg2-binary>=2.9,<2.10'

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

missing=()
for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "setup: installing ${missing[*]}"
    as_root apt-get update -qq
    # The Debian package starts a cluster of its own; pg_zdm never uses it.
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
else
    echo "setup: Debian packages present"
fi

if ! command -v cargo >/dev/null; then
    echo "setup: cargo not found; install Rust with rustup first" >&2
    exit 1
fi
if [ "$(cargo pgrx --version 2>/dev/null | awk '{print $2}')" != "$PGRX_VERSION" ]; then
    echo "setup: installing cargo-pgrx $PGRX_VERSION (about 6 minutes)"
    cargo install cargo-pgrx --version "$PGRX_VERSION" --locked
else
    echo "setup: cargo-pgrx $PGRX_VERSION present"
fi

PGRX_HOME=${PGRX_HOME:-$HOME/.pgrx}
if ! grep -q "^pg15 *= *\"$PG_CONFIG\"" "$PGRX_HOME/config.toml" 2>/dev/null; then
    echo "setup: cargo pgrx init --pg15 $PG_CONFIG"
    cargo pgrx init --pg15 "$PG_CONFIG"
fi

# Alembic for pgrx-tests/tests/migration_tools.rs (which looks for it in $VENV/bin).
if "$VENV/bin/alembic" --version 2>/dev/null | grep -q '^alembic 1\.20\.' \
   && "$VENV/bin/python" -c 'import psycopg2' 2>/dev/null; then
    echo "setup: alembic present in $VENV"
else
    echo "setup: alembic and psycopg2 into $VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q --disable-pip-version-check "$ALEMBIC_PIN" "$DRIVER_PIN"
fi
