#!/usr/bin/env bash
# Port-create benchmark through the real HTTP API: a private durable PostgreSQL (pg.sh),
# bin/dvrflowd, then bin/dvrflow-bench-api. Everything it starts is stopped at the end.
#   BENCH_N (default 5000) ports, BENCH_C (default 16) concurrent clients.
set -euo pipefail
cd "$(dirname "$0")/../.."
[ -x bin/dvrflowd ] && [ -x bin/dvrflow-bench-api ] || go build -o bin/ ./cmd/dvrflowd ./cmd/dvrflow-bench-api

dir=$(mktemp -d /tmp/dvrflow-bench.XXXXXX)
chmod 755 "$dir" # the postgres user must reach the cluster inside
pid=""
cleanup() {
	if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
	./deploy/scripts/pg.sh stop "$dir/pg" >/dev/null || true
	rm -rf "$dir"
}
trap cleanup EXIT INT TERM

./deploy/scripts/pg.sh start "$dir/pg" >/dev/null
dsn=$(./deploy/scripts/pg.sh dsn "$dir/pg")
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')
token=bench-$RANDOM$RANDOM
DVRFLOW_AUTH_TOKEN=$token ./bin/dvrflowd --db-url "$dsn&pool_max_conns=${BENCH_POOL:-8}" --listen "127.0.0.1:$port" --of-listen "" \
	--log-level warn >"$dir/dvrflowd.log" 2>&1 &
pid=$!
for _ in $(seq 100); do
	curl -fs "http://127.0.0.1:$port/" >/dev/null 2>&1 && break
	kill -0 "$pid" 2>/dev/null || { cat "$dir/dvrflowd.log"; exit 1; }
	sleep 0.1
done
echo "bench: private PostgreSQL ($(cat "$dir/pg/data/PG_VERSION"), fsync and synchronous_commit on); dvrflowd on 127.0.0.1:$port"
./bin/dvrflow-bench-api --url "http://127.0.0.1:$port" --token "$token" -n "${BENCH_N:-5000}" -c "${BENCH_C:-16}"

# OpenFlow: 100k flows pushed into a real OVS bridge, next to ovs-ofctl --bundle of the
# same flows (root and OVS needed), and the cost of idle switch sessions.
if [ "$(id -u)" -eq 0 ] && command -v ovs-vswitchd >/dev/null; then
	echo "bench: OpenFlow push of ${BENCH_FLOWS:-100000} flows vs ovs-ofctl --bundle"
	go run ./cmd/ofbench push -n "${BENCH_FLOWS:-100000}" -runs "${BENCH_RUNS:-3}"
	echo "bench: idle switch sessions"
	go run ./cmd/ofbench sessions -n "${BENCH_SESSIONS:-3000}"
	echo "bench: port bound via the API -> first ping reply across hosts (real 3-host bed)"
	go test -count=1 -tags integration -run XXX -bench PortBoundToFirstPing -benchtime 1x ./integration/
	echo "bench: security groups on the bed: iperf3 and short TCP connections/s, groups on vs port security off"
	go test -count=1 -tags integration -run XXX -bench SecurityGroupDataPath -benchtime 1x ./integration/
else
	echo "bench: OpenFlow and bed benchmarks need root and Open vSwitch: skipped"
fi

# Scale: a real dvrflowd and PostgreSQL, the topology loaded through the API (topogen) and
# three simulated OpenFlow bridges per host in one process (ofsim), with OVS's ingest rates.
# Cold start, controller restart, port-bound and group-join latency (cmd/dvrflow-bench-scale).
#   BENCH_HOSTS (default 5000), BENCH_PORTS (default 1000) ports bound one by one,
#   BENCH_SHARED (default 1000) VMs in the shared security group that 100 ports then join.
# No root needed. At 5000 hosts (15,000 bridges, 6.1M flows) and 300 ports it took 25 minutes on a 2-core,
# 24 GiB machine, with dvrflowd peaking at 15.7 GiB RSS and the simulator at ~4.7 GiB.
echo "bench: scale: ${BENCH_HOSTS:-5000} hosts x 3 simulated bridges"
go build -o bin/ ./cmd/dvrflowd ./cmd/dvrflow-bench-scale
./bin/dvrflow-bench-scale -dvrflowd bin/dvrflowd -hosts "${BENCH_HOSTS:-5000}" -ports "${BENCH_PORTS:-1000}" \
	-shared-members "${BENCH_SHARED:-1000}"
echo "bench: flows of every bridge at seed 001's size, without and with security groups, and Neutron's count"
go test -count=1 -run XXX -bench ScaleSecurityGroups -benchtime 1x -timeout 30m ./apps/

# ARP packet-ins from 1000 simulated switches answered by dvrflowd (private PostgreSQL, topology
# through the API), by a minimal os-ken app and by ovs-testcontroller, one after another; then a
# 2,000-flow change onto a real OVS bridge holding 200k flows, dvrflow's reconciler vs
# `ovs-ofctl --bundle` of the same change (root and OVS needed for both: packages, bridges).
if [ "$(id -u)" -eq 0 ] && command -v ovs-vswitchd >/dev/null; then
	./deploy/scripts/install-deps.sh bench
	go build -o bin/ ./cmd/dvrflowd ./cmd/ofbench
	echo "bench: ARP packet-in: dvrflow vs os-ken vs ovs-testcontroller"
	./bin/ofbench arp -switches "${BENCH_ARP_SWITCHES:-1000}" -duration "${BENCH_ARP_DURATION:-10s}"
	echo "bench: a ${BENCH_DELTA_CHANGE:-2000}-flow change onto a ${BENCH_DELTA_BASE:-200000}-flow bridge vs ovs-ofctl --bundle"
	./bin/ofbench delta -base "${BENCH_DELTA_BASE:-200000}" -change "${BENCH_DELTA_CHANGE:-2000}" -runs "${BENCH_RUNS:-3}" ||
		echo "bench: delta: dvrflow missed (see above)"
else
	echo "bench: ARP packet-in and flow-delta benchmarks need root and Open vSwitch: skipped"
fi

# DHCP: complete DISCOVER->OFFER->REQUEST->ACK exchanges from 1000 simulated switches answered
# by dvrflowd (private PostgreSQL, topology through the API), then the same clients through
# veths answered by dnsmasq as Neutron's DHCP agent runs it, one per network in its namespace
# (root needed: namespaces). Exits non-zero on any wrong answer.
if [ "$(id -u)" -eq 0 ]; then
	./deploy/scripts/install-deps.sh bench
	go build -o bin/ ./cmd/dvrflowd ./cmd/ofbench
	echo "bench: DHCP exchanges: dvrflow vs dnsmasq"
	./bin/ofbench dhcp -switches "${BENCH_DHCP_SWITCHES:-1000}" -duration "${BENCH_DHCP_DURATION:-10s}"
else
	echo "bench: the DHCP benchmark needs root (network namespaces): skipped"
fi
