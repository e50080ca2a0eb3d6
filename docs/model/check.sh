#!/bin/sh
# Model-check docs/model/wake.pml with spin: every property in every
# configuration, in a temporary directory, two runs at a time.
#   docs/model/check.sh      the model as implemented (must verify) plus the
#                            documented counterexamples (a dead waiter
#                            without the periodic recheck)
#   docs/model/check.sh -m   also every mutation (each must be caught)
#   docs/model/check.sh -f   also the larger mode combinations (~2 min more)
#   docs/model/check.sh -k   keep the temp dir (pan output, trails)
# VERBOSE=1 prints one line per case.  Exit status 0 iff every case gave
# the expected result; the last line is a one-line summary.
set -u

# ---- one case (the script calls itself: sh check.sh --one DIR LINE) ------
# LINE = name|expect|kind|opt|flags
#   expect: pass, or fail:P1 (lost wake-up assertion), fail:P2
#           (conservation), fail:LTL (acceptance cycle of nolost)
#   kind:   safety (assertions + invalid end states) or ltl (never claim
#           nolost under weak fairness; assertions ignored)
#   opt:    gcc level for pan (-O2 costs ~7 s of compiling, pays off on
#           searches of millions of states)
if [ "${1:-}" = --one ]; then
	tmp=$2
	IFS='|' read -r name expect kind opt flags <<EOF
$3
EOF
	d="$tmp/$name"
	mkdir -p "$d" && cp "$tmp/wake.pml" "$d/" && cd "$d" || exit 0
	# shellcheck disable=SC2086
	if ! spin -a $flags wake.pml >spin.out 2>&1; then
		echo "$name FAIL spin -a: $(head -1 spin.out)"; exit 0
	fi
	if [ "$kind" = ltl ]; then cc="" args="-a -f -A"; else cc="-DSAFETY" args=""; fi
	# shellcheck disable=SC2086
	if ! gcc $opt $cc -DCOLLAPSE -DMEMLIM=4000 -o pan pan.c >gcc.out 2>&1; then
		echo "$name FAIL gcc: $(head -1 gcc.out)"; exit 0
	fi
	# shellcheck disable=SC2086
	./pan -m1000000 -w24 $args >pan.out 2>&1
	errs=$(sed -n 's/.*errors: \([0-9]*\).*/\1/p' pan.out | head -1)
	states=$(sed -n 's/^ *\([0-9.e+]*\) states, stored.*/\1/p' pan.out | head -1)
	secs=$(sed -n 's/^pan: elapsed time \([0-9.e+]*\).*/\1/p' pan.out | head -1)
	first=$(grep -m1 '^pan:1:' pan.out)
	if [ -z "$errs" ]; then
		echo "$name FAIL no result: $(tail -1 pan.out)"; exit 0
	fi
	if grep -q 'reached -DMEMLIM bound\|max search depth too small' pan.out; then
		echo "$name FAIL search incomplete"; exit 0
	fi
	case $first in
	*acceptance*) what=LTL ;;
	*'counter>0'*) what=P1 ;;
	*'counter+'* | *'counter=='*) what=P2 ;;
	*'nsleep<='*) what=P4 ;;
	'') what=none ;;
	*) what="other" ;;
	esac
	case $expect in
	pass)
		if [ "$errs" = 0 ]; then echo "$name ok $states states ${secs}s"
		else echo "$name FAIL unexpected counterexample: $first"; fi ;;
	fail:*)
		if [ "$errs" != 0 ] && [ "$what" = "${expect#fail:}" ]; then
			echo "$name ok counterexample as expected ($what) ${secs}s"
		elif [ "$errs" != 0 ]; then
			echo "$name FAIL counterexample of the wrong kind: $first"
		else
			echo "$name FAIL expected a counterexample ($expect), got none"
		fi ;;
	esac
	exit 0
fi

# ---- driver --------------------------------------------------------------
here=$(cd "$(dirname "$0")" && pwd)
muts=0 keep=0 full=0
for a in "$@"; do
	case $a in
	-m) muts=1 ;;
	-f) full=1 ;;
	-k) keep=1 ;;
	*) echo "usage: $0 [-m] [-f] [-k]" >&2; exit 2 ;;
	esac
done
for t in spin gcc xargs; do
	command -v $t >/dev/null 2>&1 || { echo "check.sh: $t not found" >&2; exit 2; }
done
tmp=$(mktemp -d "${TMPDIR:-/tmp}/wakemodel.XXXXXX") || exit 2
if [ $keep = 1 ]; then echo "check.sh: keeping $tmp" >&2; else trap 'rm -rf "$tmp"' EXIT; fi
cp "$here/wake.pml" "$tmp/wake.pml"
t0=$(date +%s)

F="-DMODE0=FOREVER -DMODE1=FOREVER -DMODE2=FOREVER"
{
	# big searches first, so the two workers stay busy
	echo "full-forever|pass|safety|-O2|$F"
	echo "death-recheck-coro|pass|safety|-O2|-DNOPS0=1 -DDEATH -DRECHECK -DBDL=false $F"
	echo "coro-sem|pass|safety|-O2|-DNBW=1 -DUNITS=2"
	echo "death-after-release-recheck|pass|safety|-O2|-DNOPS0=1 -DDEATH -DKILL_AFTER_RELEASE -DRECHECK $F"
	echo "ltl-coro|pass|ltl|-O2|-DLTL -DNBW=1"
	echo "coro|pass|safety|-O2|-DNBW=1"
	if [ $full = 1 ]; then
		echo "full-tmo|pass|safety|-O2|-DMODE0=TMO -DMODE1=FOREVER -DMODE2=FOREVER"
		echo "full-cancel|pass|safety|-O2|-DMODE0=FOREVER -DMODE1=CANCEL -DMODE2=FOREVER"
		echo "full-cancel-tmo|pass|safety|-O2|-DMODE0=CANCEL -DMODE1=TMO -DMODE2=FOREVER"
		echo "death-recheck-coro-dl|pass|safety|-O2|-DNOPS0=1 -DDEATH -DRECHECK $F"
		echo "two-loops-b|pass|safety|-O2|-DNBW=1 -DNOPS0=1 -DLOOPS=2"
	fi
	echo "blocking|pass|safety|-O0|-DNOPS0=0"
	echo "blocking-sem|pass|safety|-O0|-DNOPS0=0 -DUNITS=2"
	echo "two-loops|pass|safety|-O0|-DNBW=0 -DNOPS0=1 -DLOOPS=2"
	echo "two-loops-sem|pass|safety|-O0|-DNBW=0 -DNOPS0=1 -DLOOPS=2 -DUNITS=2"
	echo "death-recheck|pass|safety|-O0|-DNOPS0=0 -DDEATH -DRECHECK"
	echo "death-recheck-sem|pass|safety|-O0|-DNOPS0=0 -DDEATH -DRECHECK -DUNITS=2"
	echo "ltl-blocking|pass|ltl|-O0|-DLTL -DNOPS0=0"
	echo "ltl-death-recheck|pass|ltl|-O0|-DLTL -DNOPS0=0 -DDEATH -DRECHECK"
	# why the recheck exists: these must fail
	echo "death-norecheck|fail:P1|safety|-O0|-DNOPS0=0 -DDEATH"
	echo "death-after-release-norecheck|fail:P1|safety|-O0|-DNBW=1 -DNOPS0=1 -DDEATH -DKILL_AFTER_RELEASE $F"
	echo "ltl-death-norecheck|fail:LTL|ltl|-O0|-DLTL -DNOPS0=0 -DDEATH"
	if [ $muts = 1 ]; then
		echo "mut-no-block-recheck|fail:P1|safety|-O0|-DNOPS0=0 -DMUT_NO_BLOCK_RECHECK"
		echo "mut-seq-late|fail:P1|safety|-O0|-DNOPS0=0 -DMUT_SEQ_LATE"
		echo "mut-wake-first|fail:P1|safety|-O0|-DNOPS0=0 -DMUT_WAKE_FIRST"
		echo "mut-no-seq-bump|fail:P1|safety|-O0|-DNOPS0=0 -DMUT_NO_SEQ_BUMP"
		echo "mut-fast-nsleep-only|fail:P1|safety|-O0|-DNBW=1 -DMUT_FAST_NSLEEP_ONLY"
		echo "mut-no-coro-recheck|fail:P1|safety|-O0|-DNBW=1 -DMUT_NO_CORO_RECHECK"
		echo "mut-drain-late|fail:P1|safety|-O0|-DNBW=1 -DMUT_DRAIN_LATE"
		echo "mut-unwait-clear|fail:P1|safety|-O0|-DNBW=1 -DMUT_UNWAIT_CLEAR"
		echo "mut-no-kick|fail:P1|safety|-O0|-DNBW=1 -DMUT_NO_KICK"
		echo "mut-no-undo|fail:P2|safety|-O0|-DNBW=1 -DMUT_NO_UNDO"
		echo "mut-undo-keeps-result|fail:P2|safety|-O0|-DNBW=1 -DMUT_UNDO_KEEPS_RESULT"
		echo "mut-forget-blind|fail:P1|safety|-O0|-DNOPS0=0 -DMUT_FORGET_BLIND"
		echo "mut-no-arrivals|fail:P1|safety|-O0|-DNOPS0=0 -DMUT_NO_ARRIVALS"
		echo "mut-done-any-gen|fail:P4|safety|-O0|-DNOPS0=0 -DMUT_DONE_ANY_GEN"
		echo "mut-wake-first-ltl|fail:LTL|ltl|-O0|-DLTL -DNOPS0=0 -DMUT_WAKE_FIRST"
	fi
} >"$tmp/cases"

xargs -d '\n' -P 2 -I{} sh "$here/check.sh" --one "$tmp" {} <"$tmp/cases" >"$tmp/results"

t1=$(date +%s)
total=$(wc -l <"$tmp/cases")
okc=$(grep -c ' ok ' "$tmp/results")
nver=$(grep -c ' ok [0-9]' "$tmp/results")
ncex=$(grep -c 'as expected' "$tmp/results")
[ -n "${VERBOSE:-}" ] && cat "$tmp/results"
if [ "$okc" = "$total" ]; then
	echo "wake.pml: all $total cases as expected ($nver verified exhaustively, $ncex expected counterexamples) in $((t1 - t0)) s"
	exit 0
fi
grep -v ' ok ' "$tmp/results" >&2
echo "wake.pml: $((total - okc)) of $total cases NOT as expected in $((t1 - t0)) s" >&2
exit 1
