# One command per habit (STYLE.md 11). `make test` is what the README gives and .ci/run runs.
CARGO ?= cargo
RELEASE_BIN := target/release
.PHONY: all build release install deps run claims published-bugs test fmt lint bench bench-checker bench-node bench-harness nightly clean

all: build

build:
	$(CARGO) build --workspace --bins

release:
	$(CARGO) build --release --workspace --bins

# `quorate` and `quorate-node` into ~/.cargo/bin (on PATH after rustup's setup); `quorate run`
# finds `quorate-node` beside itself.
install:
	$(CARGO) install --locked --path harness
	$(CARGO) install --locked --path target-node

# What the tests need beyond Rust (nftables, iproute2, chromium, nodejs, rustfmt, clippy):
# installed when root with apt-get, else named at once. `.ci/run` runs the same script.
deps:
	scripts/install-deps.sh

# The main job on an embedded default: a short fault run of a 5-node `strict` cluster under
# partitions and kills, checked, report written. Exits 0 whatever the verdict (it is printed);
# fails only when quorate itself fails (exit code 3).
run: release
	@bin=$${CARGO_TARGET_DIR:-target}/release; \
	$$bin/quorate run --nodes 5 --preset strict --nemesis partition,kill --time-limit 30; \
	rc=$$?; if [ $$rc -ge 3 ]; then echo "make run: quorate failed (exit $$rc)" >&2; exit $$rc; fi

# The seed's claims of leaderless replication, measured (examples/leaderless-claims.toml): one
# comparison, table in results/compare/<time>/compare.md (and .html, .json). Exits 1 when a
# claim's expectation broke (it is named), 3 on an error.
claims:
	$(CARGO) build --release -p quorate -p quorate-node
	$${CARGO_TARGET_DIR:-target}/release/quorate compare --matrix examples/leaderless-claims.toml

# Garage's published Jepsen findings, reproduced (examples/garage-published-bugs.toml): one
# comparison whose rows each hunt seeds 1-5 to their first invalid run. Needs root (netns) and
# the old releases first: scripts/garage-versions.sh 0.9.0 0.9.4 1.0.1. Exits 1 when a row did
# not show what Garage's authors found (it is named), 3 on an error.
published-bugs:
	$(CARGO) build -p quorate
	$${CARGO_TARGET_DIR:-target}/debug/quorate compare --matrix examples/garage-published-bugs.toml --test-count 5

fmt:
	$(CARGO) fmt --all

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

# deps + fmt check + clippy -D warnings + every test. `cargo test --workspace` builds every
# crate's binaries (the harness's tests start real `quorate-node` processes) with the same
# features as the tests, so no separate `cargo build` compiles the workspace a third time.
test: deps
	$(MAKE) --no-print-directory lint
	$(CARGO) test --workspace

# Speed targets live here, not in tests; each writes its figures into its own section of
# BENCHMARKS.md.
bench: bench-checker bench-node bench-harness

# The checker on Porcupine's data, generated histories up to 1M ops and 10,000 clients, and two
# recorded 100-client runs, Porcupine beside them (release build, each case in its own process
# for its peak memory); rewrites the checker section of BENCHMARKS.md. checker/bench/prepare.sh
# builds Porcupine and records the runs into a cache outside the repository first.
bench-checker:
	cache="$$(checker/bench/prepare.sh | tail -n 1)" && QUORATE_BENCH_CACHE="$$cache" $(CARGO) bench -p quorate-checker --bench checker -- --write $(CURDIR)/BENCHMARKS.md

# A 3-node cluster per preset × fsync policy, loaded from the project's own client (tokio +
# hyper) and from wrk side by side; rewrites the
# node section of BENCHMARKS.md. BENCH_SECS (default 3) sets each phase's length.
bench-node:
	$(CARGO) bench -p quorate-node --bench cluster

bench-harness:
	$(CARGO) build --release -p quorate -p quorate-node
	harness/bench/harness.sh

# The CI nightly fault job: longer runs of every preset under every fault, JUnit written.
nightly: release
	@bin=$${CARGO_TARGET_DIR:-target}/release; mkdir -p results/junit; fail=0; \
	for preset in abd lww strict dynamo weak; do \
	  for fault in partition kill pause stale-restore clock-skew; do \
	    $$bin/quorate run --preset $$preset --nemesis $$fault --time-limit $${NIGHTLY_SECS:-120} \
	      --ops-per-key 100 --name nightly-$$preset-$$fault --junit results/junit/$$preset-$$fault.xml; \
	    rc=$$?; echo "nightly: $$preset $$fault -> exit $$rc"; \
	    if [ $$rc -ge 3 ]; then fail=1; fi; \
	    if [ $$preset = abd ] && [ $$fault != stale-restore ] && [ $$rc -eq 1 ]; then \
	      echo "nightly: abd found invalid under $$fault (a regression)" >&2; fail=1; fi; \
	    if [ $$preset = abd ] && [ $$fault != stale-restore ] && [ $$rc -eq 2 ]; then \
	      echo "nightly: abd unknown under $$fault (the checker gave up: no evidence it holds)" >&2; fail=1; fi; \
	  done; \
	done; exit $$fail

clean:
	$(CARGO) clean
