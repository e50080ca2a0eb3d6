#!/bin/sh
# SPDX-License-Identifier: MIT
#
# Build the libFuzzer targets with clang and fuzz for a bounded time.
#
#   tests/fuzz/run.sh [seconds] [extra libFuzzer flags...]
#
#   seconds   how long to fuzz (-max_total_time), default 20 (CI smoke run)
#
# Long runs, e.g. one hour on both CPUs:
#   tests/fuzz/run.sh 3600
#   tests/fuzz/run.sh 3600 -jobs=2 -workers=2     (forks libFuzzer workers)
#
# The fuzzer works on a COPY of tests/fuzz/corpus/ in a temporary directory,
# so the repository is never modified. Exits non-zero on any crash, sanitizer
# report (ASan, UBSan, leak), invariant violation or hang (-timeout=5 per
# input); the temporary directory is then kept: it holds the crash-*/
# timeout-*/leak-* reproducer and the full log. Reproduce with
#   build-fuzz/tests/fuzz/fuzz_objects <reproducer>
#   AIOP_FUZZ_VERBOSE=1 build-fuzz/tests/fuzz/fuzz_objects <reproducer>
# New interesting inputs found by a long run can be minimised into the seed
# corpus with -merge=1 (see the libFuzzer documentation); keep it small.
#
# Environment: BUILD_DIR (default build-fuzz, relative to the source root),
# CC (default clang).
set -eu

secs=${1:-20}
[ $# -gt 0 ] && shift
case $secs in
''|*[!0-9]*) echo "usage: $0 [seconds] [libFuzzer flags...]" >&2; exit 2 ;;
esac

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build=${BUILD_DIR:-build-fuzz}
case $build in /*) ;; *) build=$root/$build ;; esac
export CC=${CC:-clang}

if [ ! -f "$build/build.ninja" ]; then
	meson setup "$build" "$root" -Dfuzz=enabled -Dtests=disabled \
		-Dbench=disabled -Dexamples=disabled -Db_lundef=false \
		>"${TMPDIR:-/tmp}/aiop-fuzz-setup.log" 2>&1 || {
		cat "${TMPDIR:-/tmp}/aiop-fuzz-setup.log" >&2
		exit 1
	}
fi
meson compile -C "$build" fuzz_objects >/dev/null || {
	echo "fuzz: build failed" >&2
	meson compile -C "$build" fuzz_objects >&2 || true
	exit 1
}
bin=$build/tests/fuzz/fuzz_objects
[ -x "$bin" ] || { echo "fuzz: $bin not built (is CC clang?)" >&2; exit 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/aiop-fuzz.XXXXXX")
mkdir -p "$work/corpus" "$work/artifacts"
cp "$here"/corpus/* "$work/corpus/"
log=$work/fuzz.log

export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1:handle_abort=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}

set +e
"$bin" -max_total_time="$secs" -timeout=5 -rss_limit_mb=2048 \
	-max_len=4400 -print_final_stats=1 \
	-artifact_prefix="$work/artifacts/" "$@" "$work/corpus" >"$log" 2>&1
rc=$?
set -e

# one-line summary: executions, speed, coverage
execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
speed=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
cov=$(grep -o 'cov: [0-9]*' "$log" | tail -n 1 | cut -d' ' -f2)
ft=$(grep -o 'ft: [0-9]*' "$log" | tail -n 1 | cut -d' ' -f2)
corp=$(grep -o 'corp: [0-9]*' "$log" | tail -n 1 | cut -d' ' -f2)
found=$(ls "$work/artifacts" 2>/dev/null | head -n 5 | tr '\n' ' ')

if [ "$rc" -eq 0 ] && [ -z "$found" ]; then
	echo "fuzz: OK ${secs}s, ${execs:-?} execs (${speed:-?}/s)," \
		"cov ${cov:-?} edges, ft ${ft:-?}, corpus ${corp:-?}"
	rm -rf "$work"
	exit 0
fi
tail -n 60 "$log" >&2
echo "fuzz: FAILED (exit $rc) after ${execs:-?} execs, cov ${cov:-?};" \
	"artifacts: ${found:-none}; kept in $work" >&2
exit 1
