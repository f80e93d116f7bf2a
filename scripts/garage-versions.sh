#!/usr/bin/env bash
# Build old Garage releases for `quorate run --target garage --garage-bin ...` (issue 21's
# "Published bugs, reproduced"), outside the repository:
#
#   scripts/garage-versions.sh 0.9.0 0.9.4 1.0.1
#
# installs each as $GARAGE_VERSIONS_DIR/garage-<version>/bin/garage (default folder /opt, so
# /opt/garage-0.9.4/bin/garage, where harness/tests/garage.rs looks for them). Each build
# takes 10 to 40 minutes on a 2-core machine; they run one after another at low priority.
# Cargo's --locked is tried first (the release's own lock file). It is never dropped: without
# it cargo moves Garage's own library crates (garage_api, garage_model, ... published
# separately, required as "^0.9.0") to the newest 0.9.x, so a "0.9.0" binary would run
# 0.9.4's code, the timestamp fixes included, while `garage --version` still said 0.9.0.
# When the locked build fails because the lock file pins `time` below 0.3.35 (Garage 0.9.0
# pins 0.3.28, which compilers since 1.80 reject), the release's own source (unpacked by the
# first attempt under $CARGO_HOME/registry/src) is copied, only `time` is moved to 0.3.36
# (`cargo update -p time@OLD --precise 0.3.36`, which also moves time-core and time-macros),
# and it is built with --locked from there; the script says so. A version already installed
# is skipped.
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
        src=$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/garage-"$v" 2>/dev/null | head -1)
        old=$(grep -A1 '^name = "time"$' "$src/Cargo.lock" 2>/dev/null |
            sed -n 's/^version = "\(0\.3\.[0-9]*\)"$/\1/p' | head -1)
        if [ -z "$src" ] || [ -z "$old" ] || [ "${old#0.3.}" -ge 35 ]; then
            echo "garage-versions: $v FAILED with --locked, and not for its time crate (see cargo's output above)" >&2
            failed+=("$v")
            continue
        fi
        echo "garage-versions: $v's lock file pins time $old; building its own source with only time moved to 0.3.36" >&2
        work=$(mktemp -d)
        cp -r "$src"/. "$work"/
        if (cd "$work" && cargo update -p "time@$old" --precise 0.3.36 &&
            nice -n 19 cargo build --release --locked --target-dir "$target" &&
            mkdir -p "$root/bin" && cp "$target/release/garage" "$root/bin/garage"); then
            how="--locked from its own source, time $old moved to 0.3.36 (the rest of its lock file kept)"
            rm -rf "$work"
        else
            echo "garage-versions: $v FAILED to build (see cargo's output above; source in $work)" >&2
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
