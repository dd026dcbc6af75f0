# Sourced: a throw-away PostgreSQL on a loopback port. `pg_start` installs it if missing
# (Debian's postgresql), starts a cluster in a temp folder and exports
# TINYCIFAR_TEST_POSTGRES; `pg_stop` stops it and removes the folder.
initdb_path() { ls /usr/lib/postgresql/*/bin/initdb 2>/dev/null | sort -V | tail -1; }
as_pg() {  # PostgreSQL refuses to run as root
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}
pg_start() {
  if [ -z "$(initdb_path)" ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
  fi
  PGBIN=$(dirname "$(initdb_path)")
  PGDIR=$(mktemp -d)
  local port
  port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  if [ "$(id -u)" = 0 ]; then chown postgres "$PGDIR"; fi
  as_pg "$PGBIN/initdb" -D "$PGDIR/data" -U tinycifar --auth=trust >/dev/null
  as_pg "$PGBIN/pg_ctl" -D "$PGDIR/data" -l "$PGDIR/server.log" -w \
    -o "-p $port -k $PGDIR -c listen_addresses=127.0.0.1" start >/dev/null
  as_pg "$PGBIN/createdb" -h 127.0.0.1 -p "$port" -U tinycifar tinycifar_test
  export TINYCIFAR_TEST_POSTGRES="postgresql://tinycifar@127.0.0.1:$port/tinycifar_test"
}
pg_stop() {
  as_pg "$PGBIN/pg_ctl" -D "$PGDIR/data" -m fast -w stop >/dev/null || true
  rm -rf "$PGDIR"
}
