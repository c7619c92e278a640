#!/bin/sh
# bench/fabric_plug.sh: frames/s through a cable between two Debian vde_switches, made by
# vsq-plug and by Debian's vde_plug (the anchor): a direct URL-to-URL cable (vde:// on both
# ends) and a stream cable through a coprocess (URL = vde_plug URL, VDE's stream format on a
# pipe). One libvdeplug load generator (bench/fabric_plug_load.c) sends 64 and 1500-byte
# frames into one switch and counts them out of the other. Medians of RUNS runs of SECONDS.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
RUNS=${RUNS:-3}
SECONDS_PER_RUN=${SECONDS_PER_RUN:-2}
work=$(mktemp -d /tmp/vsq-bench-plug.XXXXXX)
load=$work/fabric_plug_load
cable_pid=

cleanup() {
	[ -n "$cable_pid" ] && kill "$cable_pid" 2>/dev/null || true
	for p in "$work"/*.pid; do [ -e "$p" ] && kill "$(cat "$p")" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT INT TERM

cc -std=gnu11 -O2 -Wall -Wextra -Werror "$top/bench/fabric_plug_load.c" -o "$load" \
	-lvdeplug -lpthread

for s in a b; do
	vde_switch -d -p "$work/$s.pid" -s "$work/$s" >/dev/null 2>&1 </dev/null
	i=0
	while [ ! -S "$work/$s/ctl" ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i + 1)); done
	[ -S "$work/$s/ctl" ] || { echo "bench: vde_switch $s did not start" >&2; exit 1; }
done

median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

# cable KIND: start the cable between the switches (in the background)
cable() {
	case "$1" in
	vsq-direct) "$top/vsq" "$top/scripts/vsq-plug" "vde://$work/a" "vde://$work/b" </dev/null & ;;
	vde-direct) vde_plug "vde://$work/a" "vde://$work/b" </dev/null & ;;
	vsq-stream) "$top/vsq" "$top/scripts/vsq-plug" "vde://$work/a" = \
		"$top/vsq" "$top/scripts/vsq-plug" "vde://$work/b" </dev/null & ;;
	vde-stream) vde_plug "vde://$work/a" = vde_plug "vde://$work/b" </dev/null & ;;
	esac
	cable_pid=$!
	sleep 0.5
}

uncable() {
	kill "$cable_pid" 2>/dev/null || true
	wait "$cable_pid" 2>/dev/null || true
	cable_pid=
	sleep 0.2
}

# run KIND SIZE -> median frames/s
run() {
	: >"$work/runs"
	cable "$1"
	r=0
	while [ $r -lt "$RUNS" ]; do
		"$load" "$work/a" "$work/b" "$2" "$SECONDS_PER_RUN" | cut -d' ' -f1 >>"$work/runs"
		r=$((r + 1))
	done
	uncable
	median <"$work/runs"
}

printf '%-6s %-8s %14s %14s %8s\n' size cable vsq-plug vde_plug ratio
for kind in direct stream; do
	for size in 64 1500; do
		ours=$(run "vsq-$kind" "$size")
		anchor=$(run "vde-$kind" "$size")
		awk -v s="$size" -v k="$kind" -v a="$ours" -v b="$anchor" 'BEGIN {
			printf "%-6s %-8s %10s f/s %10s f/s %7.2fx\n", s, k, a, b, (b > 0 ? a / b : 0) }'
	done
done
