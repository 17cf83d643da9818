#!/bin/sh
# `make demo`: run the main job end to end on the embedded default.
#
# It starts `slipway serve` (queue workers, and on loopback a docker-registry,
# PowerDNS and nginx), makes a git repository from examples/hello (a page
# served by busybox httpd; the static busybox comes from Debian's
# busybox-static), submits it and follows the job from the commit to the app
# at its URL: resolved through PowerDNS, fetched through nginx. Then a second
# commit rolls out. Run from a terminal it keeps the stack up until Ctrl-C;
# DEMO_EXIT=1 (or no terminal) stops after the check.
set -eu

BUILD=${1:-build}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SLIPWAY="$ROOT/$BUILD/slipway"
DEMO=${DEMO_DIR:-$ROOT/$BUILD/demo}

rm -rf "$DEMO"
mkdir -p "$DEMO"
export SLIPWAY_DATA="$DEMO/data"

echo "==> slipway serve (logs in $DEMO/serve.log)"
"$SLIPWAY" serve --ready-file "$DEMO/ready" > "$DEMO/serve.log" 2>&1 &
SERVE=$!
trap 'kill -TERM $SERVE 2>/dev/null; wait $SERVE 2>/dev/null || true' EXIT INT TERM
i=0
while [ ! -f "$DEMO/ready" ]; do
        if ! kill -0 $SERVE 2>/dev/null; then
                echo "slipway serve did not start:"; tail -n 20 "$DEMO/serve.log"; exit 1
        fi
        i=$((i + 1)); [ $i -lt 120 ] || { echo "slipway serve is not ready after 60 s"; exit 1; }
        sleep 0.5
done
"$SLIPWAY" status

# The example app as a git repository, the way a user would push it.
cp -r "$ROOT/examples/hello" "$DEMO/hello"
cp /bin/busybox "$DEMO/hello/busybox"
git -C "$DEMO/hello" init -q -b main
git -C "$DEMO/hello" add -A
git -C "$DEMO/hello" -c user.name=demo -c user.email=demo@localhost commit -q -m "hello"

echo
echo "==> slipway submit --wait"
"$SLIPWAY" submit --repo "file://$DEMO/hello" --branch main --name hello \
        --replicas 1 --cpu 100m --memory 64Mi --wait
echo
echo "==> slipway job 1"
"$SLIPWAY" job 1

HOST=hello.default.slipway.local
INGRESS=${SLIPWAY_INGRESS_LISTEN:-127.0.0.1:8088}
DNS=${SLIPWAY_DNS_LISTEN:-127.0.0.1:5353}
echo
echo "==> dig @${DNS%:*} -p ${DNS##*:} $HOST A"
dig @"${DNS%:*}" -p "${DNS##*:}" "$HOST" A +short
echo "==> curl -H 'Host: $HOST' http://$INGRESS/"
curl -sS -H "Host: $HOST" "http://$INGRESS/"

# A second commit: the rolling update replaces the pod with no failed request.
sed -i 's|<h1>Hello from slipway</h1>|<h1>Hello again from slipway (second commit)</h1>|' \
        "$DEMO/hello/index.html"
git -C "$DEMO/hello" -c user.name=demo -c user.email=demo@localhost commit -q -am "second"
echo
echo "==> slipway submit --wait (second commit, rolling update)"
"$SLIPWAY" submit --repo "file://$DEMO/hello" --branch main --name hello --wait | tail -n 3
curl -sS -H "Host: $HOST" "http://$INGRESS/" | grep '<h1>'
echo
echo "kubectl --kubeconfig $SLIPWAY_DATA/kubeconfig get all -A"
kubectl --kubeconfig "$SLIPWAY_DATA/kubeconfig" get all -A 2>/dev/null || true

# Interactive: keep the stack up until Ctrl-C (DEMO_EXIT=1 stops now).
if [ -t 0 ] && [ "${DEMO_EXIT:-0}" != 1 ]; then
        echo
        echo "slipway serve keeps running: try the commands above, or Ctrl-C to stop."
        wait $SERVE
fi
