#!/bin/bash
# Regenerates the Open vSwitch fixtures of ofproto's tests. Needs root and Open vSwitch 3.1
# (no kernel module: the bridges use the userspace datapath). It starts its own ovsdb-server
# and ovs-vswitchd inside a throwaway network namespace with a temp dir as OVS_RUNDIR, and
# tears everything down on exit, also on failure.
#
# Fixtures written (next to this script):
#   flowmods.hex      the OFPT_FLOW_MOD ovs-ofctl sent for each line of flows.txt, in order
#   dump-flows.txt    `ovs-ofctl -O OpenFlow13 --no-stats dump-flows` of the bridge
#   flowstats.hex     the OFPMP_FLOW reply messages Open vSwitch sent for that dump
#                     (flows.txt + flows-nicira.txt installed)
#   requests.hex      the flow-stats request or delete ovs-ofctl sent for each line of
#                     requests.txt
#   bundle.hex        the conversation of `ovs-ofctl --bundle add-flows` of flows.txt
#                     (both directions: C2S lines from ovs-ofctl, S2C from OVS)
# Every capture goes through ofcapture (a logging unix-socket proxy in ./ofcapture).
set -euo pipefail
cd "$(dirname "$0")"
HERE=$PWD
[ "$(id -u)" = 0 ] || { echo "gen.sh: needs root" >&2; exit 1; }

T=$(mktemp -d /tmp/ofproto-gen.XXXXXX)
NS=ofgen-$$
CAP_PID=
cleanup() {
	set +e
	[ -n "$CAP_PID" ] && kill "$CAP_PID" 2>/dev/null && wait "$CAP_PID" 2>/dev/null
	for p in vswitchd ovsdb; do
		[ -f "$T/$p.pid" ] && kill "$(cat "$T/$p.pid")" 2>/dev/null
	done
	for p in vswitchd ovsdb; do
		while [ -f "$T/$p.pid" ] && kill -0 "$(cat "$T/$p.pid")" 2>/dev/null; do sleep 0.1; done
	done
	ip netns del "$NS" 2>/dev/null
	rm -rf "$T"
}
trap cleanup EXIT INT TERM

(cd "$HERE/../.." && go build -o "$T/ofcapture" ./ofproto/testdata/ofcapture)

ip netns add "$NS"
ip netns exec "$NS" ip link set lo up
ovsdb-tool create "$T/conf.db" /usr/share/openvswitch/vswitch.ovsschema
ip netns exec "$NS" ovsdb-server "$T/conf.db" --remote=punix:"$T/db.sock" --pidfile="$T/ovsdb.pid" \
	--detach --log-file="$T/ovsdb.log" --unixctl="$T/ovsdb.ctl"
V="ovs-vsctl --db=unix:$T/db.sock"
$V --no-wait init
ip netns exec "$NS" env OVS_RUNDIR="$T" ovs-vswitchd unix:"$T/db.sock" --pidfile="$T/vswitchd.pid" \
	--detach --log-file="$T/vswitchd.log" --unixctl="$T/vswitchd.ctl"
for br in br0 br1; do
	$V add-br $br -- set bridge $br datapath_type=netdev fail_mode=secure protocols=OpenFlow13
done
for br in br0 br1; do
	for i in 1 2 3 4 5 6 7 9; do
		$V add-port $br p$br$i -- set interface p$br$i type=internal ofport_request=$i
	done
done
OF="ovs-ofctl -O OpenFlow13"
for br in br0 br1; do
	$OF add-meter unix:"$T/$br.mgmt" meter=1,pktps,band=type=drop,rate=100
	$OF add-group unix:"$T/$br.mgmt" group_id=1,type=all,bucket=output:1
done

stopcap() { kill "$CAP_PID"; wait "$CAP_PID" 2>/dev/null || true; CAP_PID=; }

grep -v '^#' flows.txt > "$T/flows"
grep -v '^#' flows-nicira.txt > "$T/nicira"

# 1. One flow-mod per line, in file order (no bundle).
"$T/ofcapture" -listen "$T/proxy.sock" -connect "$T/br0.mgmt" -out "$T/add.cap" &
CAP_PID=$!
while [ ! -S "$T/proxy.sock" ]; do sleep 0.05; done
$OF add-flows unix:"$T/proxy.sock" "$T/flows"
$OF add-flows unix:"$T/br0.mgmt" "$T/nicira"
stopcap
awk '$1 == "C2S" && substr($2, 3, 2) == "0e" { print $2 }' "$T/add.cap" > flowmods.hex

# 2. Dump: the text ovs-ofctl prints and the replies OVS sent.
rm -f "$T/proxy.sock"
"$T/ofcapture" -listen "$T/proxy.sock" -connect "$T/br0.mgmt" -out "$T/dump.cap" &
CAP_PID=$!
while [ ! -S "$T/proxy.sock" ]; do sleep 0.05; done
$OF --no-stats dump-flows unix:"$T/proxy.sock" > dump-flows.txt
stopcap
awk '$1 == "S2C" && substr($2, 3, 2) == "13" { print $2 }' "$T/dump.cap" > flowstats.hex

# 3. Requests: filtered flow-stats requests and deletes, each line of requests.txt is
# "<ovs-ofctl command> <argument>"; requests.hex gets the message ovs-ofctl sent for it.
rm -f "$T/proxy.sock"
"$T/ofcapture" -listen "$T/proxy.sock" -connect "$T/br0.mgmt" -out "$T/req.cap" &
CAP_PID=$!
while [ ! -S "$T/proxy.sock" ]; do sleep 0.05; done
: > requests.hex
grep -v '^#' requests.txt | while read -r opt cmd arg; do
	n0=$(wc -l < "$T/req.cap")
	$OF "$opt" "$cmd" unix:"$T/proxy.sock" "$arg" > /dev/null
	tail -n +$((n0 + 1)) "$T/req.cap" | awk '$1 == "C2S" && (substr($2, 3, 2) == "0e" || (substr($2, 3, 2) == "12" && substr($2, 17, 4) == "0001")) { print $2 }' >> requests.hex
done
stopcap

# 4. A bundle, both directions.
rm -f "$T/proxy.sock"
"$T/ofcapture" -listen "$T/proxy.sock" -connect "$T/br1.mgmt" -out "$T/bundle.cap" &
CAP_PID=$!
while [ ! -S "$T/proxy.sock" ]; do sleep 0.05; done
$OF --bundle add-flows unix:"$T/proxy.sock" "$T/flows"
stopcap
awk '$1 == "C2S" || $1 == "S2C"' "$T/bundle.cap" > bundle.hex
$OF --no-stats dump-flows unix:"$T/br1.mgmt" > dump-flows-bundle.txt
cmp <(sort dump-flows-bundle.txt) <(grep -v 'table=11' dump-flows.txt | sort) ||
	{ echo "gen.sh: bundle install differs from one-by-one install" >&2; exit 1; }
rm dump-flows-bundle.txt
wc -l flowmods.hex dump-flows.txt flowstats.hex bundle.hex
