#!/bin/sh
# Install the Debian packages slipway needs to build, test and run its demo,
# but only those that are missing: on a machine that has them all this does
# nothing and needs no network. Used by `make demo` and `make test`.
set -eu

PACKAGES="
build-essential cmake pkg-config clang-format
libgit2-dev libcurl4-openssl-dev libarchive-dev libsqlite3-dev libyaml-dev
libpcre2-dev libmicrohttpd-dev libjansson-dev libssl-dev zlib1g-dev libcrypt-dev
libdeflate-dev libjemalloc-dev
git sqlite3 curl ca-certificates procps iproute2 busybox-static zstd
docker-registry skopeo umoci runc nginx-light fcgiwrap pdns-server pdns-backend-sqlite3

openssh-server openssl dnsutils
tzdata
"

missing=""
for p in $PACKAGES; do
        status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
        case "$status" in
        *" installed") ;;
        *) missing="$missing $p" ;;
        esac
done

[ -z "$missing" ] && exit 0

echo "slipway: installing missing Debian packages:$missing"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
        if command -v sudo >/dev/null 2>&1; then
                SUDO="sudo"
        else
                echo "slipway: these packages are missing and I am not root:$missing" >&2
                exit 1
        fi
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing
# Debian's packages start their daemons where an init system runs; slipway and
# its tests start their own on loopback, so stop the system copies if they run.
for svc in docker-registry nginx pdns; do
        if command -v service >/dev/null 2>&1; then
                $SUDO service "$svc" stop >/dev/null 2>&1 || true
        fi
done
