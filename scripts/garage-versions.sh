#!/usr/bin/env bash
# Build old Garage releases for `quorate run --target garage --garage-bin ...` (issue 21's
# "Published bugs, reproduced"), outside the repository:
#
#   scripts/garage-versions.sh 0.9.0 0.9.4 1.0.1
#
# installs each as $GARAGE_VERSIONS_DIR/garage-<version>/bin/garage (default folder /opt, so
# /opt/garage-0.9.4/bin/garage, where harness/tests/garage.rs looks for them). Each build
# takes 10 to 40 minutes on a 2-core machine; they run one after another at low priority.
# Cargo's --locked is tried first (the release's own lock file); when that fails (Garage
# 0.9.0's lock file pins `time` 0.3.28, which compilers since 1.80 reject) the build is
# retried without --locked, and the script says so. A version already installed is skipped.
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
    if nice -n 19 cargo install garage --locked --version "$v" --root "$root" --target-dir "$target"; then
        how="--locked"
    else
        echo "garage-versions: $v does not build with --locked; retrying without it" >&2
        if nice -n 19 cargo install garage --version "$v" --root "$root" --target-dir "$target"; then
            how="without --locked (its lock file does not build on this compiler)"
        else
            echo "garage-versions: $v FAILED to build (see cargo's output above)" >&2
            failed+=("$v")
            continue
        fi
    fi
    echo "garage-versions: $v built $how in $(( $(date +%s) - start )) s: $root/bin/garage"
done
if [ ${#failed[@]} -gt 0 ]; then
    echo "garage-versions: not installed: ${failed[*]}" >&2
    exit 1
fi
