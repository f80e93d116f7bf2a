#!/usr/bin/env bash
# What `make test` needs beyond Rust and make, installed when it can be, else named at once.
# One script for `make test` (the `deps` target) and `.ci/run`, so both need the same things.
#
#   nft, ip (nftables, iproute2)  the `netns` backend's tests (they also need root)
#   chromium, node (nodejs)       timeline.html rendered headless and its script run
#   libfaketime (faketime)        clock skew for --target garage (preloaded into its members)
#   etcd (etcd-server)            the --target etcd tests (or QUORATE_ETCD_BIN)
#   fusermount3 (fuse3)           --nemesis power-loss: members' data dirs on lazyfs, a FUSE
#                                 file system (mounted through fusermount3; /dev/fuse, root)
#   sshd, ssh, scp (openssh-server, openssh-client)  the `ssh` backend's tests (namespaced hosts)
#   rustfmt, clippy               `make lint`
#   python3, etcd-server,         the --target-file tests: the example adapters (Python's
#   redis-server, redis-tools     standard library) and the stores they speak to
#   garage                        the --target garage tests: `cargo install garage --locked`
#                                 when neither on PATH nor named by QUORATE_GARAGE_BIN (a long
#                                 build: see README)
#
# Root with apt-get: installs whatever is missing. Otherwise: exits 1 naming the packages.
set -euo pipefail

missing=()
have() { command -v "$1" >/dev/null 2>&1; }
have nft || missing+=(nftables)
have ip || missing+=(iproute2)
have chromium || have chromium-browser || have google-chrome || have chrome || missing+=(chromium)
have node || have nodejs || missing+=(nodejs)
# The library, not the `faketime` wrapper, is what the harness preloads; the Debian package
# `faketime` depends on `libfaketime`, so installing it brings both.
libfaketime_found() {
  local p
  for p in /usr/lib/*/faketime/libfaketime.so.1 /usr/lib64/faketime/libfaketime.so.1 \
           /usr/lib/faketime/libfaketime.so.1 /usr/local/lib/faketime/libfaketime.so.1; do
    [ -f "$p" ] && return 0
  done
  [ -n "${QUORATE_LIBFAKETIME:-}" ] && [ -f "$QUORATE_LIBFAKETIME" ]
}
libfaketime_found || missing+=(faketime)
# Debian puts etcd in /usr/bin; QUORATE_ETCD_BIN names another one.
if [ -n "${QUORATE_ETCD_BIN:-}" ]; then
  [ -x "$QUORATE_ETCD_BIN" ] || { echo "install-deps: QUORATE_ETCD_BIN=$QUORATE_ETCD_BIN is not an executable" >&2; exit 1; }
else
  have etcd || missing+=(etcd-server)
fi
have python3 || missing+=(python3)
have redis-server || missing+=(redis-server)
have redis-cli || missing+=(redis-tools)
have fusermount3 || missing+=(fuse3)
[ -x /usr/sbin/sshd ] || missing+=(openssh-server)
{ have ssh && have scp && have ssh-keygen; } || missing+=(openssh-client)

if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && have apt-get; then
    echo "install-deps: installing ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "install-deps: make test needs these packages, which are missing: ${missing[*]}" >&2
    echo "install-deps: install them (e.g. sudo apt-get install ${missing[*]}) or run as root with apt-get" >&2
    exit 1
  fi
fi

for comp in rustfmt clippy; do
  case $comp in rustfmt) probe="cargo fmt --version" ;; clippy) probe="cargo clippy --version" ;; esac
  if ! $probe >/dev/null 2>&1; then
    if have rustup; then
      rustup component add "$comp" >/dev/null
    else
      echo "install-deps: make test needs the Rust component $comp, and rustup is not here to add it" >&2
      exit 1
    fi
  fi
done

# Garage, the third-party store the garage target's tests run. Pinned, so CI tests the
# version the README's figures were measured with; any 2.x with admin API v2 works.
GARAGE_VERSION="${GARAGE_VERSION:-2.5.0}"
if [ -n "${QUORATE_GARAGE_BIN:-}" ]; then
  [ -x "$QUORATE_GARAGE_BIN" ] || { echo "install-deps: QUORATE_GARAGE_BIN=$QUORATE_GARAGE_BIN is not an executable" >&2; exit 1; }
elif ! have garage; then
  echo "install-deps: garage is not on PATH; building it: cargo install garage --locked --version $GARAGE_VERSION (tens of minutes on 2 cores, see README)" >&2
  start=$(date +%s)
  cargo install garage --locked --version "$GARAGE_VERSION"
  echo "install-deps: garage built in $(( $(date +%s) - start )) s" >&2
  if ! have garage; then
    echo "install-deps: garage was installed into cargo's bin directory, which is not on PATH; add it (e.g. ~/.cargo/bin) or set QUORATE_GARAGE_BIN" >&2
    exit 1
  fi
fi
