#!/usr/bin/env bash
# make bench-harness: recorded op rate of a 5-node `strict` cluster (--fsync never) with 20
# clients and no faults, once through the fault proxy and once direct, written into the
# harness section of BENCHMARKS.md. Targets (issue 11): >= 5,000 ops/s through the proxy; the proxy
# costs <= 30% of direct throughput. Figures, not assertions: it exits 0 either way unless a
# run itself fails.
set -euo pipefail
BIN=${BIN:-${CARGO_TARGET_DIR:-target}/release}
SECS=${SECS:-15}
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT

rate() { # $1 = extra flag; prints ops/s of the fault (here: load) phase
  "$BIN/quorate" run --nodes 5 --preset strict --fsync never --concurrency 20 \
    --nemesis none --time-limit "$SECS" --quiet 0.5 --check-time-limit 5 --seed 1 \
    --results "$OUT" --name bench $1 2>"$OUT/err" >/dev/null || [ $? -lt 3 ]
  sed -n 's/.* at \([0-9]*\) ops\/s.*/\1/p' "$OUT/err" | tail -n 1
}

load_before=$(cut -d" " -f1 /proc/loadavg)
proxy=$(rate "")
direct=$(rate "--direct-clients")
load_after=$(cut -d" " -f1 /proc/loadavg)
cost=$(awk -v p="$proxy" -v d="$direct" 'BEGIN { printf "%.0f", (d > 0 ? (1 - p / d) * 100 : 0) }')
# awk prints -0 when the proxied run was a hair faster; arithmetic makes that 0.
cost=$((cost))
ok_rate=$([ "$proxy" -ge 5000 ] && echo "meets" || echo "MISSES")
ok_cost=$([ "$cost" -le 30 ] && echo "meets" || echo "MISSES")
when=$(date -u +%Y-%m-%dT%H:%MZ)
section=$(cat <<MD
Measured $when by \`make bench-harness\` (release build, $SECS s of load, 5-node \`strict\`,
\`--fsync never\`, 20 clients, register read/write, no faults, every op recorded to history.jsonl):

| clients reach nodes | recorded ops/s |
| --- | --- |
| through the fault proxy | $proxy |
| direct (\`--direct-clients\`) | $direct |

Proxy cost: $cost% of direct throughput (target <= 30%: $ok_cost). Through the proxy:
$proxy ops/s (target >= 5,000: $ok_rate). Node-to-node traffic goes through the proxy in both runs.
Machine: $(nproc) cores shared with the nodes and whatever else runs (load average before:
$load_before, after: $load_after). The direct figure is the cluster's own ceiling here: the
nodes, not the proxy or the recorder, set the rate (compare the node section's figures).
MD
)
perl -0pi -e 'BEGIN { $s = shift @ARGV } s/(<!-- bench:harness:begin -->\n).*?(<!-- bench:harness:end -->)/$1$s\n$2/s' "$section" BENCHMARKS.md
echo "bench-harness: proxy $proxy ops/s, direct $direct ops/s, proxy cost $cost%"
