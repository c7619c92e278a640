#!/bin/sh
# bench/fabric_switch.sh: frames/s, Mbit/s and loss through vsq-switch, Debian's vde_switch and a
# direct ptp:// cable, with one libvdeplug load generator (bench/fabric_switch_load.c) sending
# 64, 512 and 1500-byte frames from one endpoint to another. Medians of RUNS runs of SECONDS.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
RUNS=${RUNS:-3}
SECONDS_PER_RUN=${SECONDS_PER_RUN:-2}
work=$(mktemp -d /tmp/vsq-bench-switch.XXXXXX)
load=$work/fabric_switch_load
vde_pid=
vsq_pid=

cleanup() {
	[ -n "$vde_pid" ] && kill "$vde_pid" 2>/dev/null || true
	[ -n "$vsq_pid" ] && kill "$vsq_pid" 2>/dev/null || true
	wait 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT INT TERM

cc -std=gnu11 -O2 -Wall -Wextra -Werror "$top/bench/fabric_switch_load.c" -o "$load" \
	-lvdeplug -lpthread

vde_switch -d -p "$work/vde.pid" -s "$work/vde" -n 8 >/dev/null 2>&1 </dev/null
"$top/vsq" "$top/scripts/vsq-switch" -s "$work/vsq" -n 8 &
vsq_pid=$!
for d in vde vsq; do
	i=0
	while [ ! -S "$work/$d/ctl" ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i + 1)); done
	[ -S "$work/$d/ctl" ] || { echo "bench: $d switch did not start" >&2; exit 1; }
done
vde_pid=$(cat "$work/vde.pid")

# median of the numbers on stdin
median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

# run TARGET SIZE -> "fps mbit loss" medians
run() {
	target=$1 size=$2
	: >"$work/runs"
	r=0
	while [ $r -lt "$RUNS" ]; do
		rm -f "$work/ptp" "$work/ptp+"
		"$load" "$target" "$size" "$SECONDS_PER_RUN" >>"$work/runs"
		r=$((r + 1))
	done
	fps=$(cut -d' ' -f1 "$work/runs" | median)
	mbit=$(cut -d' ' -f2 "$work/runs" | median)
	loss=$(cut -d' ' -f3 "$work/runs" | median)
	echo "$fps $mbit $loss"
}

printf '%-6s %-12s %12s %10s %8s\n' size path frames/s Mbit/s loss%
for size in 64 512 1500; do
	set -- $(run "$work/vsq" "$size"); vsq_fps=$1 vsq_mbit=$2 vsq_loss=$3
	set -- $(run "$work/vde" "$size"); vde_fps=$1 vde_mbit=$2 vde_loss=$3
	set -- $(run "ptp://$work/ptp" "$size"); ptp_fps=$1 ptp_mbit=$2 ptp_loss=$3
	printf '%-6s %-12s %12s %10s %8s\n' "$size" vsq-switch "$vsq_fps" "$vsq_mbit" "$vsq_loss"
	printf '%-6s %-12s %12s %10s %8s\n' "$size" vde_switch "$vde_fps" "$vde_mbit" "$vde_loss"
	printf '%-6s %-12s %12s %10s %8s\n' "$size" ptp-cable "$ptp_fps" "$ptp_mbit" "$ptp_loss"
	awk -v a="$vsq_fps" -v b="$vde_fps" -v c="$ptp_fps" -v s="$size" 'BEGIN {
		printf "%-6s ratio vsq-switch/vde_switch %.2fx (target >= 1.5x), vsq-switch/ptp %.0f%% (target >= 80%%)\n",
			s, a / b, 100 * a / c }'
done
