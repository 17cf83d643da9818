#!/bin/sh
# `make demo`: run the main job end to end on the embedded default.
#
# It makes a git repository from examples/hello, submits a deploy job for it
# and runs a worker until the job has ended, printing the job's log and its
# steps. The pipeline grows as slipway does; today's steps are listed by
# `slipway job`.
set -eu

BUILD=${1:-build}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SLIPWAY="$ROOT/$BUILD/slipway"
DEMO=${SLIPWAY_DEMO_DIR:-$ROOT/$BUILD/demo}

rm -rf "$DEMO"
mkdir -p "$DEMO"
export SLIPWAY_DATA="$DEMO/data"

# The example app as a git repository, the way a user would push it.
cp -r "$ROOT/examples/hello" "$DEMO/hello"
if [ -x /bin/busybox ]; then cp /bin/busybox "$DEMO/hello/busybox"; fi
git -C "$DEMO/hello" init -q -b main
git -C "$DEMO/hello" add -A
git -C "$DEMO/hello" -c user.name=demo -c user.email=demo@localhost commit -q -m "hello"

echo "==> slipway submit"
"$SLIPWAY" submit --repo "file://$DEMO/hello" --branch main --name hello \
        --replicas 1 --cpu 100m --memory 64Mi

echo "==> slipway worker (until the queue is empty)"
"$SLIPWAY" worker --drain > "$DEMO/worker.log"

echo "==> slipway logs 1"
"$SLIPWAY" logs 1
echo
echo "==> slipway job 1"
"$SLIPWAY" job 1
state=$("$SLIPWAY" jobs --json | sed -n 's/.*"state":"\([a-z]*\)".*/\1/p' | head -n 1)
echo
echo "demo data is in $DEMO (worker events in $DEMO/worker.log)"
[ "$state" = succeeded ]
