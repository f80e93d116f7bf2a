#!/usr/bin/env bash
# What `make test` needs beyond Rust and make, installed when it can be, else named at once.
# One script for `make test` (the `deps` target) and `.ci/run`, so both need the same things.
#
#   nft, ip (nftables, iproute2)  the `netns` backend's tests (they also need root)
#   chromium, node (nodejs)       timeline.html rendered headless and its script run
#   rustfmt, clippy               `make lint`
#
# Root with apt-get: installs whatever is missing. Otherwise: exits 1 naming the packages.
set -euo pipefail

missing=()
have() { command -v "$1" >/dev/null 2>&1; }
have nft || missing+=(nftables)
have ip || missing+=(iproute2)
have chromium || have chromium-browser || have google-chrome || have chrome || missing+=(chromium)
have node || have nodejs || missing+=(nodejs)

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
