#!/usr/bin/env bash
# dvrflow demo, first part: a private PostgreSQL, bin/dvrflowd (the Neutron API), and the
# reference topology created with curl. (The OVS bed comes on top of this later.)
#   demo.sh         start everything, create the topology, show it, wait for Ctrl-C
#   demo.sh down    stop everything a previous demo.sh started (pid files in .run/demo)
# DEMO_DETACH=1 returns after the set-up instead of waiting (stop with demo.sh down).
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
run=$root/.run/demo
port=${DEMO_PORT:-9696}
url=http://127.0.0.1:$port
token=${DVRFLOW_AUTH_TOKEN:-demo-admin-token}

say() { printf '\033[1;34m==>\033[0m %s\n' "$*"; }

down() {
	if [ -f "$run/dvrflowd.pid" ]; then
		pid=$(cat "$run/dvrflowd.pid")
		if kill -0 "$pid" 2>/dev/null; then
			kill "$pid"
			for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
			say "stopped dvrflowd (pid $pid)"
		fi
		rm -f "$run/dvrflowd.pid"
	fi
	if [ -d "$run/pg" ]; then
		./deploy/scripts/pg.sh stop "$run/pg" >/dev/null && say "stopped PostgreSQL"
	fi
	rm -rf "$run"
}

if [ "${1:-up}" = down ]; then
	down
	exit 0
fi
[ "${1:-up}" = up ] || { echo "usage: $0 [up|down]" >&2; exit 2; }

command -v python3 >/dev/null || { echo "demo.sh: python3 is needed to read JSON" >&2; exit 1; }
[ -x bin/dvrflowd ] || go build -o bin/ ./cmd/dvrflowd
if [ -f "$run/dvrflowd.pid" ]; then
	say "a previous demo is still running: stopping it first"
	down
fi
mkdir -p "$run"
chmod 755 "$root/.run" "$run" # the postgres user must reach the cluster inside

say "starting PostgreSQL in $run/pg"
./deploy/scripts/pg.sh start "$run/pg" >/dev/null
dsn=$(./deploy/scripts/pg.sh dsn "$run/pg")

say "starting dvrflowd on $url (token: $token)"
DVRFLOW_AUTH_TOKEN=$token ./bin/dvrflowd --db-url "$dsn" --listen "127.0.0.1:$port" >"$run/dvrflowd.log" 2>&1 &
echo $! >"$run/dvrflowd.pid"
for _ in $(seq 100); do
	curl -fs "$url/" >/dev/null 2>&1 && break
	if ! kill -0 "$(cat "$run/dvrflowd.pid")" 2>/dev/null; then
		cat "$run/dvrflowd.log" >&2
		down
		exit 1
	fi
	sleep 0.1
done

# api METHOD PATH [BODY]: the response body; fails on an HTTP error.
api() {
	curl -sS --fail-with-body -X "$1" -H "X-Auth-Token: $token" -H 'Content-Type: application/json' \
		"$url$2" ${3:+-d "$3"}
}
# field KEY.PATH: one value from the JSON on stdin.
field() { python3 -c 'import json,sys
v=json.load(sys.stdin)
for k in sys.argv[1].split("."): v=v[int(k)] if k.isdigit() else v[k]
print(v)' "$1"; }

say "registering hosts"
for h in compute1:192.168.248.1:dvr compute2:192.168.248.2:dvr network:192.168.248.3:dvr_snat; do
	IFS=: read -r name ip mode <<<"$h"
	mac=$(api PUT "/v2.0/dvr-hosts/$name" "{\"dvr_host\": {\"tunnel_ip\": \"$ip\", \"mode\": \"$mode\", \"bridges\": {}}}" | field dvr_host.mac_address)
	echo "    $name  $ip  $mode  DVR MAC $mac"
done

say "creating networks and subnets"
net1=$(api POST /v2.0/networks '{"network": {"name": "net1", "project_id": "demo"}}' | field network.id)
net2=$(api POST /v2.0/networks '{"network": {"name": "net2", "project_id": "demo"}}' | field network.id)
ext=$(api POST /v2.0/networks '{"network": {"name": "public", "router:external": true, "provider:network_type": "flat", "provider:physical_network": "public"}}' | field network.id)
sub1=$(api POST /v2.0/subnets "{\"subnet\": {\"name\": \"net1-subnet\", \"network_id\": \"$net1\", \"cidr\": \"10.0.1.0/24\", \"ip_version\": 4, \"project_id\": \"demo\"}}" | field subnet.id)
sub2=$(api POST /v2.0/subnets "{\"subnet\": {\"name\": \"net2-subnet\", \"network_id\": \"$net2\", \"cidr\": \"10.0.2.0/24\", \"ip_version\": 4, \"project_id\": \"demo\"}}" | field subnet.id)
api POST /v2.0/subnets "{\"subnet\": {\"name\": \"public-subnet\", \"network_id\": \"$ext\", \"cidr\": \"172.24.4.0/24\", \"ip_version\": 4, \"enable_dhcp\": false}}" >/dev/null
echo "    net1 10.0.1.0/24, net2 10.0.2.0/24, public 172.24.4.0/24 (router:external)"

say "creating distributed router R1 with its gateway and both interfaces"
r1=$(api POST /v2.0/routers "{\"router\": {\"name\": \"R1\", \"distributed\": true, \"project_id\": \"demo\", \"external_gateway_info\": {\"network_id\": \"$ext\"}}}" | field router.id)
api PUT "/v2.0/routers/$r1/add_router_interface" "{\"subnet_id\": \"$sub1\"}" >/dev/null
api PUT "/v2.0/routers/$r1/add_router_interface" "{\"subnet_id\": \"$sub2\"}" >/dev/null
echo "    R1 $r1"

say "creating VM ports"
declare -A vmport
for v in VM1:net1:10.0.1.5:compute1 VM3:net2:10.0.2.3:compute1 VM2:net2:10.0.2.5:compute2 VM4:net1:10.0.1.6:compute2; do
	IFS=: read -r name net ip host <<<"$v"
	n=$net1; [ "$net" = net2 ] && n=$net2
	vmport[$name]=$(api POST /v2.0/ports "{\"port\": {\"name\": \"$name\", \"network_id\": \"$n\", \"project_id\": \"demo\", \"device_owner\": \"compute:nova\", \"device_id\": \"$name\", \"binding:host_id\": \"$host\", \"fixed_ips\": [{\"ip_address\": \"$ip\"}]}}" | field port.id)
	echo "    $name  $ip on $host"
done

say "creating floating IPs"
for f in VM1:172.24.4.5 VM3:172.24.4.7; do
	IFS=: read -r name addr <<<"$f"
	api POST /v2.0/floatingips "{\"floatingip\": {\"floating_network_id\": \"$ext\", \"floating_ip_address\": \"$addr\", \"port_id\": \"${vmport[$name]}\", \"project_id\": \"demo\"}}" >/dev/null
	echo "    $addr -> $name"
done

table() { # table COLLECTION COLUMNS...: a listing as aligned columns
	api GET "/v2.0/$1" | python3 -c 'import json,sys
coll, cols = sys.argv[1].replace("-", "_"), sys.argv[2:]
def cell(v):
    if isinstance(v, list): return ",".join(x["ip_address"] if isinstance(x, dict) and "ip_address" in x else str(x) for x in v)
    if isinstance(v, dict): return v.get("network_id", json.dumps(v))
    if isinstance(v, bool): return str(v).lower()
    return "-" if v is None or v == "" else str(v)
rows = [[cell(it.get(c)) for c in cols] for it in json.load(sys.stdin)[coll]]
w = [max([len(c)] + [len(r[i]) for r in rows]) for i, c in enumerate(cols)]
for r in [cols] + rows: print("    " + "  ".join(x.ljust(w[i]) for i, x in enumerate(r)))' "$1" "${@:2}"
}

say "networks";        table networks name id provider:network_type provider:segmentation_id router:external subnets
say "ports";           table ports name device_owner mac_address fixed_ips binding:host_id status
say "routers";         table routers name id distributed external_gateway_info
say "floating IPs";    table floatingips floating_ip_address fixed_ip_address port_id router_id status
say "DVR host MACs";   table dvr-host-macs host mac_address
say "agents";          table agents host agent_type alive

cat <<EOT

Try:
  export OS_TOKEN=$token
  curl -s -H "X-Auth-Token: \$OS_TOKEN" $url/v2.0/ports?binding:host_id=compute1 | jq .
  curl -s -H "X-Auth-Token: \$OS_TOKEN" '$url/v2.0/networks?fields=name&fields=provider:segmentation_id' | jq .
  curl -s -H "X-Auth-Token: \$OS_TOKEN" $url/v2.0/dvr-host-macs | jq .
  curl -s -H "X-Auth-Token: \$OS_TOKEN" -X DELETE $url/v2.0/networks/$net1 | jq .   # 409 NetworkInUse
  psql '$dsn' -c 'SELECT revision, kind, op, id FROM changes ORDER BY revision DESC LIMIT 10'
Logs: $run/dvrflowd.log.  Stop: ./deploy/scripts/demo.sh down (or Ctrl-C here)
EOT

if [ "${DEMO_DETACH:-0}" = 1 ]; then
	exit 0
fi
trap 'echo; down; exit 0' INT TERM
wait "$(cat "$run/dvrflowd.pid")" || true
say "dvrflowd exited"
down
