#!/usr/bin/env bash
# Build old Garage releases for `quorate run --target garage --garage-bin ...` (issue 21's
# "Published bugs, reproduced"), outside the repository:
#
#   scripts/garage-versions.sh 0.9.0 0.9.4 1.0.1
#
# installs each as $GARAGE_VERSIONS_DIR/garage-<version>/bin/garage (default folder /opt, so
# /opt/garage-0.9.4/bin/garage, where harness/tests/garage.rs looks for them). Each build
# takes 10 to 40 minutes on a 2-core machine; they run one after another at low priority.
# Every build is `cargo install --locked`: the release's own lock file, as released. Without
# --locked cargo moves Garage's own library crates (garage_api, garage_model, ... published
# separately, required as "^0.9.0") to the newest 0.9.x, so a "0.9.0" binary would run 0.9.4's
# code, the timestamp fixes included, while `garage --version` still said 0.9.0. (0.9.0's lock
# file pins `time` 0.3.28, which compilers since 1.80 reject, but only for dev-dependencies —
# aws-config, for Garage's tests: `cargo tree --locked -i time@0.3.28 -e all` — which `cargo
# install` does not build; 0.9.0, 0.9.4 and 1.0.1 all built --locked on rustc 1.95.) A
# version already installed is skipped.
# Exit status: 0 when every version is installed, 1 otherwise (each failure is named).
set -u

dir=${GARAGE_VERSIONS_DIR:-/opt}
target=${GARAGE_VERSIONS_TARGET_DIR:-$dir/garage-build}
if [ $# -eq 0 ]; then
    echo "usage: $0 VERSION... (e.g. 0.9.0 0.9.4 1.0.1); installs into $dir/garage-<version>" >&2
    exit 1
fi
failed=()
for v in "$@"; do
    if ! [[ $v =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]]; then
        echo "garage-versions: $v: expected a version such as 0.9.4" >&2
        failed+=("$v")
        continue
    fi
    root=$dir/garage-$v
    if [ -x "$root/bin/garage" ]; then
        echo "garage-versions: $v already at $root/bin/garage ($("$root/bin/garage" --version | head -1))"
        continue
    fi
    start=$(date +%s)
    if ! nice -n 19 cargo install garage --locked --version "$v" --root "$root" --target-dir "$target"; then
        echo "garage-versions: $v FAILED to build with its own lock file (see cargo's output above)" >&2
        failed+=("$v")
        continue
    fi
    echo "garage-versions: $v built --locked in $(( $(date +%s) - start )) s: $root/bin/garage"
done
if [ ${#failed[@]} -gt 0 ]; then
    echo "garage-versions: not installed: ${failed[*]}" >&2
    exit 1
fi
