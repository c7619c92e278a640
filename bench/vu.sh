#!/bin/sh
# bench/vu.sh: vsq-run against PRoot (and PRoot pinned to one CPU) on four workloads, medians of
# runs: (a) stat() in a loop under a bound path, (b) find /usr -name '*.h', (c) tar cf /dev/null
# /usr/include, (d) a small C project built with gcc. Prints each time, the overhead over native
# and the ratio of our overhead to PRoot's (target: at most 0.1).
# VU_BENCH_STATS (default 200000) stat() calls, VU_BENCH_RUNS (default 3) runs per command.
set -u
cd "$(dirname "$0")/.."
top=$PWD
stats=${VU_BENCH_STATS:-200000}
runs=${VU_BENCH_RUNS:-3}
work=$(mktemp -d "${TMPDIR:-/tmp}/vsq-bench-vu.XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM

command -v proot >/dev/null || { echo "bench/vu: proot is not installed (apt-get install proot)"; exit 1; }

mkdir -p "$work/data" "$work/proj"
echo data > "$work/data/file"
cat > "$work/statloop.c" <<'EOF'
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
int main(int argc, char **argv)
{
	long n = atol(argv[1]), ok = 0;
	struct stat st;

	for (long i = 0; i < n; i++)
		ok += stat(argv[2], &st) == 0;
	return ok == n ? 0 : 1;
}
EOF
cc -O2 -o "$work/statloop" "$work/statloop.c" || exit 1
for i in 1 2 3 4 5 6 7 8; do
	printf '#include <stdio.h>\nint f%d(int x) { return x * %d; }\n' $i $i > "$work/proj/f$i.c"
done
printf 'int f1(int);\nint main(void) { return f1(0); }\n' > "$work/proj/main.c"
printf 'OBJ = main.o f1.o f2.o f3.o f4.o f5.o f6.o f7.o f8.o\nprog: $(OBJ)\n\tgcc -o prog $(OBJ)\n%%.o: %%.c\n\tgcc -O1 -c $<\nclean:\n\trm -f prog *.o\n' > "$work/proj/Makefile"

# median wall time in seconds of running "$@" $runs times (after one run to warm caches)
median() {
	"$@" >/dev/null 2>&1
	for r in $(seq "$runs"); do
		s=$(date +%s.%N)
		"$@" >/dev/null 2>&1 || echo "bench/vu: failed: $*" >&2
		e=$(date +%s.%N)
		echo "$e - $s" | bc
	done | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'
}

VSQ_RUN="$top/vsq $top/scripts/vsq-run"
# bench NAME PATH-NATIVE PATH-IN-VIEW CMD...: "@" in CMD's arguments stands for the path
bench() {
	name=$1 here=$2 there=$3
	shift 3
	native=$(median $(echo "$@" | sed "s|@|$here|g"))
	ours=$(median $VSQ_RUN --bind "$work/data:/bench" -- $(echo "$@" | sed "s|@|$there|g"))
	proot=$(median proot -b "$work/data:/bench" $(echo "$@" | sed "s|@|$there|g"))
	pinned=$(median taskset -c 0 proot -b "$work/data:/bench" $(echo "$@" | sed "s|@|$there|g"))
	awk -v n="$name" -v a="$native" -v o="$ours" -v p="$proot" -v q="$pinned" 'BEGIN {
		op = p - a; oq = q - a; oo = o - a
		printf "%-28s native %7.3fs  vsq-run %7.3fs  proot %7.3fs  proot-pinned %7.3fs\n", n, a, o, p, q
		printf "%-28s overhead: vsq-run %.3fs, proot %.3fs, pinned %.3fs; vsq-run/proot %.3f, vsq-run/pinned %.3f\n",
			"", oo, op, oq, (op > 0 ? oo / op : 0), (oq > 0 ? oo / oq : 0)
	}'
}

# The mechanism's own floor: a supervisor that answers every trapped stat with CONTINUE and
# does nothing else, against PRoot's overhead per stat. No seccomp user-notification supervisor
# (vsq's included) can have a smaller overhead ratio than this on this machine.
cc -std=gnu11 -O2 -o "$work/notify_floor" "$top/bench/vu_notify_floor.c" || exit 1
floor_us=$("$work/notify_floor" "$stats" "$work/data/file")
set -f # the commands' patterns are not for this shell
bench "stat x$stats (bound path)" "$work/data" /bench "$work/statloop" "$stats" @/file
awk -v f="$floor_us" -v a="$native" -v o="$ours" -v p="$proot" -v q="$pinned" -v n="$stats" 'BEGIN {
	per = a / n * 1e6; fo = f - per
	printf "%-28s per stat: native %.2f us; overhead vsq-run %.2f us, proot %.2f us, pinned %.2f us\n",
		"", per, o / n * 1e6 - per, p / n * 1e6 - per, q / n * 1e6 - per
	printf "%-28s floor: a supervisor that only answers CONTINUE costs %.2f us per call: %.3f of proot, %.3f of pinned\n",
		"", fo, fo / (p / n * 1e6 - per), fo / (q / n * 1e6 - per)
}'
bench "find /usr -name '*.h'" - - find /usr -name '*.h'
bench "tar cf /dev/null /usr/include" - - tar cf /dev/null /usr/include
bench "make (9 C files, gcc)" - - make -s -C "$work/proj" -B
set +f

# a CPU-bound program with few calls: overhead should be under 5%. It runs for a couple of
# seconds so that what is measured is the slowdown while it runs; the one-off cost of starting
# under the supervisor (which a 0.2 s program would mostly measure) has its own line below.
cat > "$work/spin.c" <<'EOF'
int main(void)
{
	volatile unsigned long x = 0;

	for (unsigned long i = 0; i < 6000000000UL; i++)
		x += i;
	return 0;
}
EOF
cc -O1 -o "$work/spin" "$work/spin.c"
native=$(median "$work/spin")
ours=$(median $VSQ_RUN -- "$work/spin")
awk -v a="$native" -v o="$ours" 'BEGIN { printf "%-28s native %7.3fs  vsq-run %7.3fs  overhead %.1f%% (target < 5%%)\n", "CPU-bound loop", a, o, (o - a) / a * 100 }'
native=$(median /bin/true)
ours=$(median $VSQ_RUN -- /bin/true)
proot=$(median proot /bin/true)
awk -v a="$native" -v o="$ours" -v p="$proot" 'BEGIN { printf "%-28s native %7.4fs  vsq-run %7.4fs  proot %7.4fs  (one-off cost of starting: vsq-run %.1f ms, proot %.1f ms)\n", "start-up (/bin/true)", a, o, p, (o - a) * 1e3, (p - a) * 1e3 }'
