#!/usr/bin/env bash
# A private PostgreSQL cluster for the demo and the benchmark (durable settings: fsync and
# synchronous_commit stay on).
#   pg.sh start DIR   initdb (first time) and start, unix socket in DIR, TCP on 127.0.0.1
#   pg.sh stop DIR    stop it (the data stays in DIR)
#   pg.sh dsn DIR     print its URL (database "dvrflow")
# PGPORT picks the TCP port (default: a free one, remembered in DIR/port).
set -euo pipefail

usage() { echo "usage: $0 start|stop|dsn DIR" >&2; exit 2; }
[ $# -eq 2 ] || usage
cmd=$1
dir=$(realpath -m "$2")

bindir=""
for d in /usr/lib/postgresql/17/bin /usr/lib/postgresql/16/bin /usr/lib/postgresql/15/bin /usr/lib/postgresql/14/bin; do
	if [ -x "$d/pg_ctl" ]; then bindir=$d; break; fi
done
if [ -z "$bindir" ] && command -v pg_ctl >/dev/null; then bindir=$(dirname "$(command -v pg_ctl)"); fi
[ -n "$bindir" ] || { echo "pg.sh: PostgreSQL binaries not found (make deps installs them)" >&2; exit 1; }

as_pg() {
	if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

dsn() { echo "postgres://postgres@127.0.0.1:$(cat "$dir/port")/dvrflow?sslmode=disable"; }

case $cmd in
start)
	mkdir -p "$dir"
	[ "$(id -u)" -eq 0 ] && chown postgres: "$dir"
	if [ ! -f "$dir/data/PG_VERSION" ]; then
		as_pg "$bindir/initdb" -D "$dir/data" --auth=trust -U postgres --encoding=UTF8 >"$dir/initdb.log"
	fi
	if as_pg "$bindir/pg_ctl" status -D "$dir/data" >/dev/null 2>&1; then
		echo "pg.sh: already running: $(dsn)"
		exit 0
	fi
	[ -f "$dir/port" ] || echo "${PGPORT:-$(free_port)}" >"$dir/port"
	[ "$(id -u)" -eq 0 ] && chown postgres: "$dir/port"
	port=$(cat "$dir/port")
	as_pg "$bindir/pg_ctl" start -w -t 60 -D "$dir/data" -l "$dir/server.log" \
		-o "-c listen_addresses=127.0.0.1 -c port=$port -c unix_socket_directories=$dir -c max_connections=200 -c shared_buffers=256MB" >/dev/null
	as_pg "$bindir/psql" -h "$dir" -p "$port" -U postgres -d postgres -qAtc \
		"SELECT 1 FROM pg_database WHERE datname = 'dvrflow'" | grep -q 1 ||
		as_pg "$bindir/createdb" -h "$dir" -p "$port" -U postgres dvrflow
	echo "pg.sh: running: $(dsn)"
	;;
stop)
	if [ -f "$dir/data/PG_VERSION" ] && as_pg "$bindir/pg_ctl" status -D "$dir/data" >/dev/null 2>&1; then
		as_pg "$bindir/pg_ctl" stop -w -m fast -D "$dir/data" >/dev/null
		echo "pg.sh: stopped"
	fi
	;;
dsn)
	[ -f "$dir/port" ] || { echo "pg.sh: no cluster in $dir" >&2; exit 1; }
	dsn
	;;
*) usage ;;
esac
