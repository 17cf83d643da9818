#!/bin/sh
# Rewrite the configuration table of README.md from `slipway config --markdown`
# (the table sits between the two marker comments). Usage: scripts/readme-config.sh [BUILD]
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN="$ROOT/${1:-build}/slipway"
TABLE=$(env -u SLIPWAY_DATA "$BIN" config --markdown)
awk -v table="$TABLE" '
/<!-- config:begin/ { print; print table; skip = 1; next }
/<!-- config:end/   { skip = 0 }
!skip { print }
' "$ROOT/README.md" > "$ROOT/README.md.tmp"
mv "$ROOT/README.md.tmp" "$ROOT/README.md"
