#!/bin/sh
# bench/fabric_switch.sh: frames/s, Mbit/s and loss through vsq-switch, Debian's vde_switch and a
# direct ptp:// cable, with one libvdeplug load generator (bench/fabric_switch_load.c) sending
# 64, 512 and 1500-byte frames from one endpoint to another. Medians of RUNS runs of SECONDS.
# The cpu columns are CPU microseconds per frame: the switch process's (utime+stime from
# /proc, per frame received) and the generator's sending and receiving threads'. With both
# cores busy, frames/s cannot exceed 2e6 / (switch + tx + rx): that is where the time goes.
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

ticks=$(getconf CLK_TCK)
# CPU time of process PID so far, in clock ticks
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }

# run TARGET SIZE [SWITCH_PID] -> "fps mbit loss switch_us tx_us rx_us" medians
run() {
	target=$1 size=$2 pid=${3:-}
	: >"$work/runs"
	r=0
	while [ $r -lt "$RUNS" ]; do
		rm -f "$work/ptp" "$work/ptp+"
		before=0 after=0
		[ -n "$pid" ] && before=$(cpu_ticks "$pid")
		out=$("$load" "$target" "$size" "$SECONDS_PER_RUN")
		[ -n "$pid" ] && after=$(cpu_ticks "$pid")
		echo "$out" | awk -v t="$((after - before))" -v hz="$ticks" \
			'{ printf "%s %.2f\n", $0, $5 ? t * 1e6 / hz / $5 : 0 }' >>"$work/runs"
		r=$((r + 1))
	done
	for f in 1 2 3 8 6 7; do
		printf '%s ' "$(cut -d' ' -f$f "$work/runs" | median)"
	done
	echo
}

row() { # SIZE PATH fps mbit loss switch_us tx_us rx_us
	printf '%-6s %-12s %12s %10s %8s %10s %7s %7s\n' "$@"
}
row size path frames/s Mbit/s loss% cpu:switch tx rx
cpus=$(nproc)
for size in 64 512 1500; do
	set -- $(run "$work/vsq" "$size" "$vsq_pid"); vsq_fps=$1 vsq_cpu="$4 $5 $6"
	row "$size" vsq-switch "$@"
	set -- $(run "$work/vde" "$size" "$vde_pid"); vde_fps=$1
	row "$size" vde_switch "$@"
	set -- $(run "ptp://$work/ptp" "$size"); ptp_fps=$1 ptp_cpu="$5 $6"
	row "$size" ptp-cable "$1" "$2" "$3" - "$5" "$6"
	awk -v a="$vsq_fps" -v b="$vde_fps" -v c="$ptp_fps" -v s="$size" 'BEGIN {
		printf "%-6s ratio vsq-switch/vde_switch %.2fx (target >= 1.5x), vsq-switch/ptp %.0f%% (target >= 80%%)\n",
			s, a / b, 100 * a / c }'
	# Where the time goes: with every core busy, a path cannot pass more frames per second
	# than cores / (CPU per frame of everything on it). Through a switch each frame is sent
	# and received twice, once by the generator and once by the switch.
	echo "$vsq_fps $vsq_cpu $ptp_fps $ptp_cpu" | awk -v n="$cpus" -v s="$size" '{
		vsq_ceiling = n * 1e6 / ($2 + $3 + $4); ptp_ceiling = n * 1e6 / ($6 + $7)
		printf "%-6s CPU ceilings on %d cores: vsq-switch path %.0fk frames/s (reached %.0f%%), ptp %.0fk (reached %.0f%%); the switch path'"'"'s ceiling is %.0f%% of ptp'"'"'s\n",
			s, n, vsq_ceiling / 1e3, 100 * $1 / vsq_ceiling, ptp_ceiling / 1e3, 100 * $5 / ptp_ceiling,
			100 * vsq_ceiling / ptp_ceiling }'
done
