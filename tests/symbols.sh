#!/usr/bin/env bash
# The shared library exports exactly the functions the public headers
# declare with AIOP_API: nothing internal leaks, nothing declared is missing.
set -euo pipefail
lib="$1"
incdir="$2"
exported=$(nm -D --defined-only "$lib" | awk '$2 == "T" {print $3}' |
	sed 's/@.*//' | sort -u)
# declarations start a line with AIOP_API; the name is the first "name("
declared=$(grep -hE '^AIOP_API ' "$incdir"/aiop.h "$incdir"/aiop/*.h |
	sed -E 's/^[^(]*[^a-z_0-9(]([a-z_0-9]+)\(.*/\1/' | sort -u)
if ! diff <(echo "$declared") <(echo "$exported"); then
	echo "symbols: '<' declared but not exported, '>' exported but not declared"
	exit 1
fi
bad=$(echo "$exported" | grep -v '^aiop_' || true)
[ -z "$bad" ] || { echo "exported without the aiop_ prefix: $bad"; exit 1; }
echo "symbols: $(echo "$exported" | wc -l) exported, all declared"
