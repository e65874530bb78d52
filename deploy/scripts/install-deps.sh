#!/usr/bin/env bash
# Installs the Debian packages dvrflow's tests, bed and demo need, only when missing.
# keystone with uwsgi's python3 plugin: the private Keystone of the tests (testbed/keystone).
set -euo pipefail
pkgs=(openvswitch-switch iproute2 iputils-ping nftables tcpdump arping ethtool curl postgresql chromium fonts-dejavu-core python3-openstackclient socat iperf3 isc-dhcp-client busybox keystone uwsgi-core uwsgi-plugin-python3)
# `install-deps.sh bench` installs only what the benchmarks compare against (bench.sh runs it;
# make test does not): the os-ken framework Neutron uses, Open vSwitch's test controller, and
# dnsmasq as Neutron's DHCP agent depends on it (dnsmasq-base: the program without the
# system service that package dnsmasq would start on the machine).
BENCH_PACKAGES=(python3-os-ken openvswitch-testcontroller dnsmasq-base)
# `install-deps.sh conformance`: OpenStack's API test suites (make conformance) and stestr's
# subunit tools, beside the private Keystone's packages above.
CONFORMANCE_PACKAGES=(tempest neutron-tempest-plugin python3-subunit)
case "${1:-}" in
bench) pkgs=("${BENCH_PACKAGES[@]}") ;;
conformance) pkgs+=("${CONFORMANCE_PACKAGES[@]}") ;;
esac
missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -eq 0 ]; then
	echo "deps: all present (${pkgs[*]})"
	exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
	echo "deps: missing ${missing[*]} and not root: install them or run as root" >&2
	exit 1
fi
echo "deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "deps: installed ${missing[*]}"
