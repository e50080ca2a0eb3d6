#!/usr/bin/env bash
# The README's example is examples/worker_loop.c verbatim (which is built and
# run as a test), so the README cannot show code that does not compile.
set -euo pipefail
root="$1"
awk '/^```c$/{on=1; next} /^```$/{if (on) exit} on' "$root/README.md" |
	diff -u "$root/examples/worker_loop.c" - && echo "README example matches"
