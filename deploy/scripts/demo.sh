#!/usr/bin/env bash
# make demo: dvrflow's seed scenario on a real three-host bed on this machine, with traffic.
#   demo.sh [up]   install missing Debian packages, build bin/, start a private PostgreSQL,
#                  then bin/dvrflow-demo up: the bed (OVS per host in network namespaces),
#                  dvrflowd, one dvrflow-host per host, the seed topology through the REST
#                  API, four VMs, and pings east-west, floating IP and SNAT. It stays up
#                  until Ctrl-C (or demo.sh down from another terminal), then removes it all.
#   demo.sh down   tear down whatever a previous demo left (processes, bed, PostgreSQL).
# DEMO_EXIT_AFTER_TRAFFIC=1 tears down right after the traffic and exits 0 only if every
# ping worked (CI, scripts). Everything lives in $DEMO_STATE_DIR (default /run/dvrflow-demo).
set -euo pipefail
cd "$(dirname "$0")/../.."
run=${DEMO_STATE_DIR:-/run/dvrflow-demo}
t0=$(date +%s.%N)

say() { printf '[%ss] %s\n' "$(awk -v now="$(date +%s.%N)" -v t0="$t0" 'BEGIN { printf "%5.1f", now - t0 }')" "$*"; }

# quietly WHAT CMD...: run CMD, saying every 5 s that WHAT still runs; its output is shown
# only when it fails.
quietly() {
	local what=$1 out rc=0 start=$SECONDS
	shift
	out=$(mktemp)
	"$@" >"$out" 2>&1 &
	local pid=$!
	while kill -0 "$pid" 2>/dev/null; do
		for _ in 1 2 3 4 5 6 7 8 9 10; do
			kill -0 "$pid" 2>/dev/null || break 2
			sleep 0.5
		done
		say "  ... still $what ($((SECONDS - start))s)"
	done
	wait "$pid" || rc=$?
	[ "$rc" -eq 0 ] || cat "$out" >&2
	rm -f "$out"
	return "$rc"
}

demo_bin() { # the demo binary, built when missing (down after make clean)
	[ -x bin/dvrflow-demo ] || go build -o bin/ ./cmd/dvrflow-demo
	echo bin/dvrflow-demo
}

down() {
	if [ -d "$run" ]; then
		local rc=0
		"$(demo_bin)" down --state-dir "$run" --t0 "$t0" || rc=$?
		if [ -d "$run/pg" ]; then
			./deploy/scripts/pg.sh stop "$run/pg" >/dev/null
			say "postgres: stopped"
		fi
		# On a failed down keep the record, so that another demo.sh down can retry.
		[ "$rc" -ne 0 ] || rm -rf "$run"
		return "$rc"
	else
		"$(demo_bin)" down --state-dir "$run" --t0 "$t0" >/dev/null # sweep the default prefix
		say "down: nothing was running"
	fi
}

case ${1:-up} in
down)
	down
	exit 0
	;;
up) ;;
*)
	echo "usage: $0 [up|down]" >&2
	exit 2
	;;
esac

if [ "$(id -u)" -ne 0 ]; then
	echo "demo.sh: the demo needs root (network namespaces, Open vSwitch): run sudo make demo" >&2
	exit 1
fi
say "deps: checking the Debian packages (openvswitch-switch, iproute2, postgresql, ...)"
./deploy/scripts/install-deps.sh | sed 's/^/          /'
if [ -e "$run" ]; then
	say "a previous demo left $run: tearing it down first"
	down
fi
cmds=(./cmd/dvrflowd ./cmd/dvrflow-host ./cmd/dvrflow-demo ./cmd/dvrctl)
say "build: go build -o bin/ ${cmds[*]}"
quietly "building" go build -o bin/ "${cmds[@]}"

mkdir -p "$run"
chmod 755 "$run" # the postgres user must reach its cluster inside
say "postgres: starting a private cluster in $run/pg"
quietly "starting PostgreSQL" ./deploy/scripts/pg.sh start "$run/pg"
dsn=$(./deploy/scripts/pg.sh dsn "$run/pg")
say "postgres: up ($dsn)"

# dvrflow-demo tears down on SIGINT/SIGTERM itself: a Ctrl-C at the terminal reaches it
# directly; a SIGTERM/SIGHUP to this script is passed on. Then this script stops PostgreSQL.
args=(up --state-dir "$run" --db-url "$dsn" --t0 "$t0")
[ "${DEMO_EXIT_AFTER_TRAFFIC:-0}" = 1 ] && args+=(--exit-after-traffic)
bin/dvrflow-demo "${args[@]}" &
child=$!
trap 'kill -TERM "$child" 2>/dev/null || true' TERM HUP
trap ':' INT
set +e
while kill -0 "$child" 2>/dev/null; do wait "$child"; done # a trapped signal ends a wait early
wait "$child"
rc=$?
set -e
trap - TERM HUP INT
down
if [ "$rc" -eq 0 ]; then say "demo: done, nothing left behind"; else say "demo: failed (exit $rc)"; fi
exit "$rc"
