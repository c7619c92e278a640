#!/bin/sh
# bench/fabric_wire_io.sh: what an unimpaired wire costs with real traffic. Two vsq switches in
# one vsq process, joined by a plain link (the anchor) or by a wire with no impairment; a
# libvdeplug load generator sends from a client of the first switch to a client of the second.
# Prints frames/s (medians of RUNS runs) and the ratio wire/link (target: at least 0.90).
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
RUNS=${RUNS:-5}
SECONDS_PER_RUN=${SECONDS_PER_RUN:-2}
work=$(mktemp -d /tmp/vsq-bench-wire-io.XXXXXX)
pid=
cleanup() {
	[ -n "$pid" ] && kill "$pid" 2>/dev/null || true
	wait 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT INT TERM

load=$work/load
cc -std=gnu11 -O2 -Wall -Wextra -Werror "$top/bench/fabric_switch_load.c" -o "$load" -lvdeplug -lpthread

median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

# lab KIND: serve two joined switches until killed
lab() {
	"$top/vsq" -e "
	  local fabric = require 'vsq.fabric'
	  local a <close> = assert(fabric.switch{ path = '$work/a' })
	  local b <close> = assert(fabric.switch{ path = '$work/b' })
	  local l <close> = assert(fabric.link(a, b, ('$1' == 'wire') and {} or nil))
	  vsq.run()" &
	pid=$!
	i=0
	while { [ ! -S "$work/a/ctl" ] || [ ! -S "$work/b/ctl" ]; } && [ $i -lt 100 ]; do
		sleep 0.05; i=$((i + 1))
	done
}

measure() { # KIND SIZE -> median frames/s
	lab "$1"
	: >"$work/runs"
	r=0
	while [ $r -lt "$RUNS" ]; do
		"$load" "$work/a" "$2" "$SECONDS_PER_RUN" "$work/b" | cut -d' ' -f1 >>"$work/runs"
		r=$((r + 1))
	done
	kill "$pid"; wait "$pid" 2>/dev/null || true; pid=
	median <"$work/runs"
}

printf '%-6s %14s %14s %8s\n' size link_frames/s wire_frames/s ratio
for size in 64 1500; do
	link=$(measure link "$size")
	wire=$(measure wire "$size")
	awk -v s="$size" -v l="$link" -v w="$wire" 'BEGIN {
		printf "%-6s %14d %14d %7.2fx (target >= 0.90)\n", s, l, w, w / l }'
done
