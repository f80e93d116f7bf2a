#!/usr/bin/env bash
# Bench-only preparation for `make bench-checker`, all of it outside the repository, in
# $QUORATE_BENCH_CACHE (default ~/.cache/quorate-bench):
#  1. Porcupine built from its source with a small main (checker/bench/porcupine/main.go) that
#     reads a quorate JSONL history: `porcupine-check`. The source is $PORCUPINE_SRC (a checkout
#     or a git directory), else cloned from GitHub. Needs Go (Debian: golang-go).
#  2. Two recorded runs of the release harness, the histories of issue 20's table:
#     abd-100.jsonl  (--nodes 5 --preset abd --concurrency 100 --nemesis none --time-limit 8)
#     abd-100-faults.jsonl (the same with --nemesis partition,kill --time-limit 15)
#     Recorded once; delete them to record again.
# Prints the cache directory on its last line. Skips step 1 without Go (the bench then says
# Porcupine was not run), never silently: it says so on stderr.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cache="${QUORATE_BENCH_CACHE:-$HOME/.cache/quorate-bench}"
mkdir -p "$cache"

# 1. Porcupine.
if [ ! -x "$cache/porcupine-check" ] || [ "$here/porcupine/main.go" -nt "$cache/porcupine-check" ]; then
  if ! command -v go >/dev/null; then
    echo "prepare: no Go toolchain (apt-get install -y golang-go): Porcupine will not be run" >&2
  else
    src="$cache/porcupine-src"
    if [ ! -f "$src/checker.go" ]; then
      rm -rf "$src" && mkdir -p "$src"
      if [ -n "${PORCUPINE_SRC:-}" ] && git --git-dir="$PORCUPINE_SRC" rev-parse HEAD >/dev/null 2>&1; then
        git --git-dir="$PORCUPINE_SRC" archive HEAD | tar -x -C "$src"
      elif [ -n "${PORCUPINE_SRC:-}" ]; then
        cp -r "$PORCUPINE_SRC"/. "$src"/
      else
        git clone --depth 1 https://github.com/anishathalye/porcupine "$src"
      fi
    fi
    main="$cache/porcupine-main"
    mkdir -p "$main"
    cp "$here/porcupine/main.go" "$main/main.go"
    cat > "$main/go.mod" <<MOD
module quoratebench

go 1.16

require github.com/anishathalye/porcupine v0.0.0
replace github.com/anishathalye/porcupine => $src
MOD
    (cd "$main" && GOFLAGS=-mod=mod GOPROXY=off go build -o "$cache/porcupine-check" .)
    echo "prepare: built $cache/porcupine-check from $(git --git-dir="${PORCUPINE_SRC:-$src/.git}" rev-parse --short HEAD 2>/dev/null || echo 'its source')" >&2
  fi
fi

# 2. The recorded runs.
record() { # name, extra flags…
  local name="$1"; shift
  [ -s "$cache/$name.jsonl" ] && return 0
  local quorate="$root/target/release/quorate" node="$root/target/release/quorate-node"
  if [ ! -x "$quorate" ] || [ ! -x "$node" ]; then
    (cd "$root" && cargo build --release -p quorate -p quorate-node >&2)
  fi
  local out="$cache/runs" dir
  rm -rf "${out:?}/$name"
  # The run folder is the last line on stdout; exit 1 or 2 is a verdict, not a failure.
  dir="$("$quorate" run --results "$out" --name "$name" --node-bin "$node" --nodes 5 \
    --preset abd --concurrency 100 --seed 20 "$@" | tail -n 1)" || true
  if [ ! -s "$dir/history.jsonl" ]; then
    echo "prepare: the $name run left no history (folder: ${dir:-none})" >&2
    exit 1
  fi
  cp "$dir/history.jsonl" "$cache/$name.jsonl"
}
record abd-100 --nemesis none --time-limit 8
record abd-100-faults --nemesis partition,kill --time-limit 15
echo "$cache"
