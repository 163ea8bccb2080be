#!/usr/bin/env bash
# Renders an HTML report (e.g. from `loraga compare`) to a PNG in headless Chromium, to look at it
# without a browser. Not run in CI.
#
# Usage: scripts/screenshot-report.sh REPORT.html OUT.png [WIDTH,HEIGHT]   (default 1200,1600)
# Needs Debian's `chromium` (apt-get update && apt-get install -y chromium).
set -euo pipefail
if [ $# -lt 2 ]; then
  echo "usage: $0 REPORT.html OUT.png [WIDTH,HEIGHT]" >&2
  exit 2
fi
report=$(realpath "$1")
out=$(realpath -m "$2")
size=${3:-1200,1600}
chromium_bin=${CHROMIUM:-$(command -v chromium || command -v chromium-browser || true)}
if [ -z "$chromium_bin" ]; then
  echo "$0: chromium not found; install it with: apt-get update && apt-get install -y chromium" >&2
  exit 1
fi
profile=$(mktemp -d)
trap 'rm -rf "$profile"' EXIT
"$chromium_bin" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
  --disable-background-networking --disable-component-update --disable-sync \
  --user-data-dir="$profile" --hide-scrollbars --window-size="$size" \
  --screenshot="$out" "file://$report" 2>/dev/null
test -s "$out" || { echo "$0: no screenshot written" >&2; exit 1; }
echo "wrote $out"
