#!/usr/bin/env bash
# The whole test suite: formatting, lints, docs, unit + integration tests against real components
# (docker-registry, skopeo, openssl, kubectl, the test cluster), and the air-gap end-to-end suite.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/deps.sh

export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}
step() { printf '\n== %s ==\n' "$*"; }

step "cargo fmt --check"
cargo fmt --all --check

step "cargo clippy -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "cargo doc -D warnings"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --locked --quiet

step "bundle definitions lint"
cargo build --locked --quiet -p airlift-pack
for def in bundles/*/ airgap-tests/fixtures/*/; do
  ./target/debug/airlift-pack lint "$def"
done

step "cargo test"
cargo test --workspace --locked --no-fail-fast

step "fuzz: bundle reader, definition parser, values files (coverage-guided, bounded)"
FUZZ_SECONDS=${FUZZ_SECONDS:-45} bash scripts/fuzz.sh
