#!/usr/bin/env bash
# Build and run tests/subproject against this checkout, as a consumer would:
# the checkout is placed at subprojects/aiop (a symlink in a scratch copy).
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
cp -r "$root/tests/subproject" "$tmp/consumer"
ln -s "$root" "$tmp/consumer/subprojects/aiop"
meson setup "$tmp/build" "$tmp/consumer" >/dev/null
ninja -C "$tmp/build" >/dev/null
meson test -C "$tmp/build" --print-errorlogs
