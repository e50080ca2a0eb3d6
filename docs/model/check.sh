#!/bin/sh
# Model-check docs/model/wake.pml with spin: every property in every
# configuration, in a temporary directory, two runs at a time.
#   docs/model/check.sh        correct model (must pass) + the documented
#                              counterexamples (death without the recheck)
#   docs/model/check.sh -m     also every mutation (each must be caught)
#   docs/model/check.sh -k     keep the temp dir (pan output, trails)
# Exit status 0 iff every case gave the expected result; prints one line.
set -u
here=$(cd "$(dirname "$0")" && pwd)
model="$here/wake.pml"
muts=0 keep=0
for a in "$@"; do
	case $a in
	-m) muts=1 ;;
	-k) keep=1 ;;
	*) echo "usage: $0 [-m] [-k]" >&2; exit 2 ;;
	esac
done
for t in spin gcc; do
	command -v $t >/dev/null 2>&1 || { echo "check.sh: $t not found" >&2; exit 2; }
done
tmp=$(mktemp -d "${TMPDIR:-/tmp}/wakemodel.XXXXXX") || exit 2
[ $keep = 1 ] || trap 'rm -rf "$tmp"' EXIT
cp "$model" "$tmp/wake.pml"
t0=$(date +%s)

# name | expect | kind | flags
#   expect: pass, or fail:<what the counterexample must show>
#     P1 = lost wake-up assertion, P2 = conservation, LTL = acceptance cycle
#   kind: safety (assertions + invalid end states) or ltl (never claim
#     nolost, weak fairness, assertions ignored)
FOREVER="-DMODE0=FOREVER -DMODE1=FOREVER -DMODE2=FOREVER"
cat >"$tmp/cases" <<EOF
full-cancel|pass|safety|-DMODE0=FOREVER -DMODE1=CANCEL -DMODE2=FOREVER
full-tmo|pass|safety|-DMODE0=TMO -DMODE1=FOREVER -DMODE2=FOREVER
death-recheck-coro|pass|safety|-DNOPS0=1 -DDEATH -DRECHECK $FOREVER
death-after-release-recheck|pass|safety|-DNOPS0=1 -DDEATH -DKILL_AFTER_RELEASE -DRECHECK $FOREVER
coro-sem|pass|safety|-DNBW=1 -DUNITS=2
full-forever|pass|safety|$FOREVER
ltl-coro|pass|ltl|-DLTL -DNBW=1
coro|pass|safety|-DNBW=1
blocking|pass|safety|-DNOPS0=0
blocking-sem|pass|safety|-DNOPS0=0 -DUNITS=2
two-loops|pass|safety|-DNBW=0 -DNOPS0=1 -DLOOPS=2
two-loops-sem|pass|safety|-DNBW=0 -DNOPS0=1 -DLOOPS=2 -DUNITS=2
death-recheck|pass|safety|-DNOPS0=0 -DDEATH -DRECHECK
death-recheck-sem|pass|safety|-DNOPS0=0 -DDEATH -DRECHECK -DUNITS=2
ltl-blocking|pass|ltl|-DLTL -DNOPS0=0
ltl-death-recheck|pass|ltl|-DLTL -DNOPS0=0 -DDEATH -DRECHECK
death-norecheck|fail:P1|safety|-DNOPS0=0 -DDEATH
death-after-release-norecheck|fail:P1|safety|-DNBW=1 -DNOPS0=1 -DDEATH -DKILL_AFTER_RELEASE $FOREVER
ltl-death-norecheck|fail:LTL|ltl|-DLTL -DNOPS0=0 -DDEATH
EOF
if [ $muts = 1 ]; then
	cat >>"$tmp/cases" <<EOF
mut-no-block-recheck|fail:P1|safety|-DNOPS0=0 -DMUT_NO_BLOCK_RECHECK
mut-seq-late|fail:P1|safety|-DNOPS0=0 -DMUT_SEQ_LATE
mut-wake-first|fail:P1|safety|-DNOPS0=0 -DMUT_WAKE_FIRST
mut-no-seq-bump|fail:P1|safety|-DNOPS0=0 -DMUT_NO_SEQ_BUMP
mut-fast-nsleep-only|fail:P1|safety|-DNBW=1 -DMUT_FAST_NSLEEP_ONLY
mut-no-coro-recheck|fail:P1|safety|-DNBW=1 -DMUT_NO_CORO_RECHECK
mut-drain-late|fail:P1|safety|-DNBW=1 -DMUT_DRAIN_LATE
mut-unwait-clear|fail:P1|safety|-DNBW=1 -DMUT_UNWAIT_CLEAR
mut-no-kick|fail:P1|safety|-DNBW=1 -DMUT_NO_KICK
mut-no-undo|fail:P2|safety|-DNBW=1 -DMUT_NO_UNDO
mut-undo-keeps-result|fail:P2|safety|-DNBW=1 -DMUT_UNDO_KEEPS_RESULT
mut-wake-first-ltl|fail:LTL|ltl|-DLTL -DNOPS0=0 -DMUT_WAKE_FIRST
EOF
fi

# one case: prints "name ok|FAIL detail"
one() {
	IFS='|' read -r name expect kind flags <<EOF
$1
EOF
	d="$tmp/$name"
	mkdir -p "$d" && cp "$tmp/wake.pml" "$d/" && cd "$d" || return
	# shellcheck disable=SC2086
	if ! spin -a $flags wake.pml >spin.out 2>&1; then
		echo "$name FAIL spin -a: $(head -1 spin.out)"; return
	fi
	if [ "$kind" = ltl ]; then
		cc="" args="-a -f -A"
	else
		cc="-DSAFETY" args=""
	fi
	# shellcheck disable=SC2086
	if ! gcc -O2 $cc -DMEMLIM=4000 -o pan pan.c >gcc.out 2>&1; then
		echo "$name FAIL gcc: $(head -1 gcc.out)"; return
	fi
	# shellcheck disable=SC2086
	./pan -m1000000 -w24 $args >pan.out 2>&1
	errs=$(sed -n 's/.*errors: \([0-9]*\).*/\1/p' pan.out | head -1)
	states=$(sed -n 's/^ *\([0-9.e+]*\) states, stored.*/\1/p' pan.out | head -1)
	first=$(grep -m1 '^pan:1:' pan.out)
	if [ -z "$errs" ]; then
		echo "$name FAIL no result: $(tail -1 pan.out)"; return
	fi
	if grep -q 'reached -DMEMLIM bound\|max search depth too small' pan.out; then
		echo "$name FAIL search incomplete"; return
	fi
	case $first in
	*acceptance*) what=LTL ;;
	*'counter>0'*) what=P1 ;;
	*'counter+'* | *'counter==1'* | *'counter==2'* | *'HELD'*) what=P2 ;;
	'') what=none ;;
	*) what="other($first)" ;;
	esac
	case $expect in
	pass)
		if [ "$errs" = 0 ]; then echo "$name ok $states states"
		else echo "$name FAIL unexpected counterexample: $first"; fi ;;
	fail:*)
		if [ "$errs" != 0 ] && [ "$what" = "${expect#fail:}" ]; then
			echo "$name ok counterexample as expected ($what)"
		elif [ "$errs" != 0 ]; then
			echo "$name FAIL counterexample of the wrong kind: $first"
		else
			echo "$name FAIL expected a counterexample ($expect), got none"
		fi ;;
	esac
}

# run two at a time (a small job pool in plain sh)
: >"$tmp/results"
n=0
while IFS= read -r line; do
	(one "$line" >>"$tmp/results") &
	n=$((n + 1))
	if [ $((n % 2)) = 0 ]; then wait; fi
done <"$tmp/cases"
wait

total=$(wc -l <"$tmp/cases")
okc=$(grep -c ' ok ' "$tmp/results")
t1=$(date +%s)
if [ "$okc" = "$total" ] && [ "$(wc -l <"$tmp/results")" = "$total" ]; then
	[ -n "${VERBOSE:-}" ] && cat "$tmp/results"
	echo "wake.pml: all $total cases as expected ($(grep -c 'ok [0-9]' "$tmp/results") verified, $(grep -c 'as expected' "$tmp/results") expected counterexamples) in $((t1 - t0)) s"
	exit 0
fi
grep -v ' ok ' "$tmp/results" >&2
echo "wake.pml: $((total - okc)) of $total cases NOT as expected in $((t1 - t0)) s" >&2
exit 1
