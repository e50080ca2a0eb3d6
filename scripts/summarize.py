#!/usr/bin/env python3
"""Count test cases in meson testlog.json files: Criterion executables count
their own cases (from their "Synthesis" line), anything else counts once.
Prints "N passed, M failed". (python3 is already required by Meson.)"""
import json
import re
import sys

SYN = re.compile(r"Synthesis: Tested: (\d+) \| Passing: (\d+) \| "
                 r"Failing: (\d+) \| Crashing: (\d+)")
passed = failed = 0
for path in sys.argv[1:]:
    try:
        lines = open(path).read().splitlines()
    except OSError:
        continue
    for line in lines:
        t = json.loads(line)
        ok = t.get("result") in ("OK", "EXPECTEDFAIL", "SKIP")
        m = SYN.search((t.get("stdout") or "") + (t.get("stderr") or ""))
        if m:
            passed += int(m.group(2))
            failed += int(m.group(3)) + int(m.group(4))
            if not ok and int(m.group(3)) + int(m.group(4)) == 0:
                failed += 1  # e.g. killed by the meson timeout
        elif ok:
            passed += 1
        else:
            failed += 1
print(f"{passed} passed, {failed} failed")
