#!/bin/bash
# Entrypoint with the official postgres image's contract, for Debian's PostgreSQL.
set -euo pipefail

die() { echo "postgres entrypoint: $*" >&2; exit 1; }

# VAR_FILE wins over VAR, as in the official image; both set is an error.
file_env() {
  local var=$1 file_var="${1}_FILE" default=${2:-}
  if [ -n "${!var:-}" ] && [ -n "${!file_var:-}" ]; then
    die "both $var and $file_var are set: set only one."
  fi
  local value=$default
  if [ -n "${!var:-}" ]; then
    value=${!var}
  elif [ -n "${!file_var:-}" ]; then
    [ -r "${!file_var}" ] || die "$file_var names ${!file_var}, which cannot be read."
    value=$(<"${!file_var}")
  fi
  export "$var"="$value"
  unset "$file_var"
}

init_cluster() {
  file_env POSTGRES_PASSWORD
  file_env POSTGRES_USER postgres
  file_env POSTGRES_DB "$POSTGRES_USER"
  [ -n "$POSTGRES_PASSWORD" ] || die "the database is uninitialized and no password is given: set POSTGRES_PASSWORD_FILE (or POSTGRES_PASSWORD)."
  local pwfile
  pwfile=$(mktemp)
  printf '%s' "$POSTGRES_PASSWORD" >"$pwfile"
  chown postgres "$pwfile"
  runuser -u postgres -- initdb --username="$POSTGRES_USER" --pwfile="$pwfile" \
    --auth-local=trust --auth-host=scram-sha-256 --encoding=UTF8 --locale=C.UTF-8 \
    -D "$PGDATA" >/dev/null
  rm -f "$pwfile"
  unset POSTGRES_PASSWORD
  echo "host all all all scram-sha-256" >>"$PGDATA/pg_hba.conf"
  # Temporary server on the socket only, to create the database and run init scripts.
  runuser -u postgres -- pg_ctl -D "$PGDATA" -o "-c listen_addresses=''" -w start >/dev/null
  if [ "$POSTGRES_DB" != postgres ]; then
    runuser -u postgres -- psql -v ON_ERROR_STOP=1 -U "$POSTGRES_USER" -d postgres \
      -c "CREATE DATABASE \"$POSTGRES_DB\"" >/dev/null
  fi
  local f
  for f in /docker-entrypoint-initdb.d/*; do
    case "$f" in
      *.sh) . "$f" ;;
      *.sql) runuser -u postgres -- psql -v ON_ERROR_STOP=1 -U "$POSTGRES_USER" -d "$POSTGRES_DB" -f "$f" ;;
    esac
  done
  runuser -u postgres -- pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
  echo "postgres entrypoint: initialized $PGDATA"
}

if [ "${1:-}" = postgres ]; then
  mkdir -p "$PGDATA"
  chown postgres:postgres "$PGDATA"
  chmod 0700 "$PGDATA"
  if [ ! -s "$PGDATA/PG_VERSION" ]; then
    init_cluster
  fi
  unset POSTGRES_PASSWORD POSTGRES_PASSWORD_FILE
  # setpriv execs in place (no extra process), so the server gets the stop signal.
  exec setpriv --reuid=postgres --regid=postgres --init-groups "$@" -c listen_addresses="*"
fi
exec "$@"
