#!/usr/bin/env bash
# Starts a throw-away PostgreSQL server on 127.0.0.1 for the store tests and prints its URL.
# Usage: eval "$(bash .ci/postgres.sh)"   -> exports SDL_TEST_POSTGRES_URL
set -euo pipefail
port=${SDL_PG_PORT:-55432}
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
    (apt-get update -qq && apt-get install -y -qq postgresql) >/dev/null 2>&1
fi
bin=$(dirname "$(ls /usr/lib/postgresql/*/bin/initdb | sort -V | tail -n 1)")
data=$(mktemp -d -t sdl-pg.XXXXXX)
chown postgres "$data"
runuser -u postgres -- "$bin/initdb" -D "$data" -U postgres --auth=trust >/dev/null
runuser -u postgres -- "$bin/pg_ctl" -D "$data" -o "-p $port -k $data -c listen_addresses=127.0.0.1" -l "$data/log" -w start >/dev/null
echo "export SDL_TEST_POSTGRES_URL=postgresql+psycopg://postgres@127.0.0.1:$port/postgres"
echo "export SDL_TEST_POSTGRES_DATA=$data"
