#!/bin/sh
# SPDX-License-Identifier: MIT
#
# Build the libFuzzer targets with clang and fuzz for a bounded time.
#
#   tests/fuzz/run.sh [seconds] [extra libFuzzer flags...]
#
#   seconds   how long to fuzz in all (-max_total_time), default 20 (CI
#             smoke run), shared evenly by the targets:
#               fuzz_objects  every primitive but the queue (corpus/)
#               fuzz_queue    the message queue (corpus-queue/)
#               fuzz_recv     receiving an object from a hostile sender
#                             (corpus-recv/)
#
# Long runs, e.g. one hour on both CPUs:
#   tests/fuzz/run.sh 3600
#   tests/fuzz/run.sh 3600 -jobs=2 -workers=2     (forks libFuzzer workers)
#   FUZZ_TARGETS=fuzz_queue tests/fuzz/run.sh 600  (one target, all the time)
#
# The fuzzer works on a COPY of each seed directory in a temporary
# directory, so the repository is never modified. Exits non-zero on any
# crash, sanitizer report (ASan, UBSan, leak), invariant violation or hang
# (-timeout=5 per input); the temporary directory is then kept: it holds
# the crash-*/timeout-*/leak-* reproducer and the full log. Reproduce with
#   build-fuzz/tests/fuzz/fuzz_objects <reproducer>
#   AIOP_FUZZ_VERBOSE=1 build-fuzz/tests/fuzz/fuzz_objects <reproducer>
# (the same for fuzz_queue; AIOP_FUZZ_LATE_MS=n there also fails a call
# that returns n ms after its deadline). Library bugs reported and not yet
# fixed keep their reproducers in crashes-queue/. New interesting inputs
# found by a long run can be minimised into a seed directory with -merge=1
# (see the libFuzzer documentation); keep it small.
#
# Environment: BUILD_DIR (default build-fuzz, relative to the source root),
# CC (default clang), FUZZ_TARGETS (default "fuzz_objects fuzz_queue
# fuzz_recv").
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
targets=${FUZZ_TARGETS:-fuzz_objects fuzz_queue fuzz_recv}
ntargets=$(echo $targets | wc -w)
share=$((secs / ntargets))
[ "$share" -gt 0 ] || share=1

# shellcheck disable=SC2086
meson compile -C "$build" $targets >/dev/null || {
	echo "fuzz: build failed" >&2
	meson compile -C "$build" $targets >&2 || true
	exit 1
}

ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1:handle_abort=1}
export ASAN_OPTIONS
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}

# fuzz one target for $share seconds; 0 if nothing was found
fuzz_one() { # $1 = target, then extra libFuzzer flags
	name=$1
	shift
	case $name in
	fuzz_objects) seeds=corpus maxlen=4400 ;;
	fuzz_queue) seeds=corpus-queue maxlen=4609 ;; # flags+script+image
	fuzz_recv) seeds=corpus-recv maxlen=8500 ;; # header+fds+8 KiB image
	*) echo "fuzz: unknown target $name" >&2; return 1 ;;
	esac
	bin=$build/tests/fuzz/$name
	[ -x "$bin" ] || { echo "fuzz: $bin not built (is CC clang?)" >&2
			   return 1; }

	work=$(mktemp -d "${TMPDIR:-/tmp}/aiop-$name.XXXXXX")
	mkdir -p "$work/corpus" "$work/artifacts"
	cp "$here/$seeds"/* "$work/corpus/"
	log=$work/fuzz.log

	set +e
	# from the work directory: with -jobs, libFuzzer writes a
	# fuzz-<job>.log per job into the current directory
	(cd "$work" && "$bin" -max_total_time="$share" -timeout=5 \
		-rss_limit_mb=2048 -max_len=$maxlen -print_final_stats=1 \
		-artifact_prefix="$work/artifacts/" "$@" "$work/corpus") \
		>"$log" 2>&1
	rc=$?
	set -e

	# one-line summary: executions, speed, coverage
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" |
		tail -n 1)
	speed=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" |
		tail -n 1)
	cov=$(grep -o 'cov: [0-9]*' "$log" | tail -n 1 | cut -d' ' -f2)
	ft=$(grep -o 'ft: [0-9]*' "$log" | tail -n 1 | cut -d' ' -f2)
	corp=$(grep -o 'corp: [0-9]*' "$log" | tail -n 1 | cut -d' ' -f2)
	found=$(ls "$work/artifacts" 2>/dev/null | head -n 5 | tr '\n' ' ')

	if [ "$rc" -eq 0 ] && [ -z "$found" ]; then
		echo "fuzz: $name OK ${share}s, ${execs:-?} execs" \
			"(${speed:-?}/s), cov ${cov:-?} edges, ft ${ft:-?}," \
			"corpus ${corp:-?}"
		rm -rf "$work"
		return 0
	fi
	tail -n 60 "$log" >&2
	echo "fuzz: $name FAILED (exit $rc) after ${execs:-?} execs," \
		"cov ${cov:-?}; artifacts: ${found:-none}; kept in $work" >&2
	return 1
}

status=0
for t in $targets; do
	fuzz_one "$t" "$@" || status=1
done
exit $status
