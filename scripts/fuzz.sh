#!/usr/bin/env bash
# Coverage-guided fuzzing (libFuzzer, through libfuzzer-sys) of the bundle reader, the definition
# parser and values files, each for a bounded time. scripts/test.sh runs it (FUZZ_SECONDS=45).
#
#   scripts/fuzz.sh                       # every target, 60 s each
#   FUZZ_SECONDS=600 scripts/fuzz.sh values
#
# Runs on the stable toolchain: the targets are built with rustc's SanitizerCoverage pass
# (`-Cpasses=sancov-module`, the instrumentation cargo-fuzz adds) and with debug assertions and
# overflow checks, without AddressSanitizer (safe Rust needs none; `cargo +nightly fuzz run
# TARGET -s address` adds it where nightly is installed). libFuzzer itself is compiled from
# libfuzzer-sys with the system C++ compiler. The corpora start from the hostile fixtures of
# crates/bundle/tests (the tests write them when AIRLIFT_FUZZ_SEEDS is set, a real signed bundle
# with images among them), the demo definition and fuzz/seeds/values, and grow across runs in
# fuzz/corpus/. A crash stops the run, leaves its input under fuzz/artifacts/<target>/ and fails
# the script: turn it into a named regression test.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
secs=${FUZZ_SECONDS:-60}
if [ $# -gt 0 ]; then targets=("$@"); else targets=(bundle_reader definition values); fi
corpus="$root/fuzz/corpus"
mkdir -p "$corpus"/bundle_reader "$corpus"/definition "$corpus"/values

echo "== seeding corpora"
AIRLIFT_FUZZ_SEEDS="$corpus/bundle_reader" cargo test -q -p airlift-bundle \
    --test hostile_tar --test canonical -- --skip every_flipped_byte >/dev/null
cp bundles/demo/airlift.yaml "$corpus/definition/demo.yaml"
cp fuzz/seeds/values/* "$corpus/values/"

# The host triple, so RUSTFLAGS reach the targets but not build scripts (as cargo-fuzz does).
host=$(rustc -vV | sed -n 's/^host: //p')
echo "== building the fuzz targets (release, SanitizerCoverage, $host)"
(cd fuzz && RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing -Cdebug-assertions -Coverflow-checks" \
    cargo build --locked --release --bins --target "$host" --target-dir "$root/fuzz/target")

for t in "${targets[@]}"; do
    echo "== fuzzing $t for ${secs}s"
    mkdir -p "$root/fuzz/artifacts/$t"
    log="$root/fuzz/artifacts/$t.log"
    status=0
    "$root/fuzz/target/$host/release/$t" "$corpus/$t" -max_total_time="$secs" -timeout=10 \
        -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$root/fuzz/artifacts/$t/" \
        >"$log" 2>&1 || status=$?
    grep -E '^#[0-9]+ +(INITED|DONE)|^stat::(number_of_executed_units|peak_rss_mb)' "$log" || true
    if [ "$status" -ne 0 ]; then
        tail -n 60 "$log" >&2
        echo "fuzz: $t failed (exit $status); its input is under fuzz/artifacts/$t/, the log in $log" >&2
        exit 1
    fi
done
echo "== no crash in ${#targets[@]} target(s), ${secs}s each"
