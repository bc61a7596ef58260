#!/usr/bin/env bash
# ensure-postgres.sh: PostgreSQL's server programs (initdb, pg_ctl, postgres), psql and createdb for
# the post-house tests (tests/postgres.py, docs/operations.md). Debian installs the server programs
# under /usr/lib/postgresql/<major>/bin, off PATH: the tests look there too. Installed with apt-get (Debian
# package postgresql) when missing and we are root; otherwise a note, and those tests skip with the reason.
# Nothing is started here: each test session initdb's and starts its own throw-away cluster.
set -u
found() {
  command -v psql >/dev/null 2>&1 || return 1
  command -v initdb >/dev/null 2>&1 || compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null
}
found && exit 0
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "PostgreSQL missing: installing Debian package postgresql with apt-get"
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends postgresql >/dev/null 2>&1 ||
    { apt-get update >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends postgresql >/dev/null 2>&1; }
  found && exit 0
  echo "warning: apt-get install postgresql did not provide initdb and psql" >&2
fi
echo "note: PostgreSQL (initdb, pg_ctl, postgres, psql, createdb) not found (Debian: apt-get install postgresql);" \
     "the postgres-marked tests will be skipped" >&2
exit 0
