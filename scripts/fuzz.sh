#!/usr/bin/env bash
# Coverage-guided fuzzing (cargo-fuzz, libFuzzer) of the bundle reader, the definition parser and
# values files, each for a bounded time. Not part of scripts/test.sh.
#
#   scripts/fuzz.sh                       # every target, 60 s each
#   FUZZ_SECONDS=600 scripts/fuzz.sh values
#
# Needs the nightly toolchain and `cargo install cargo-fuzz`. The corpora start from the hostile
# fixtures of crates/bundle/tests (the tests write them when AIRLIFT_FUZZ_SEEDS is set, a real
# signed bundle with images among them), the demo definition and fuzz/seeds/values. A crash stops the run,
# leaves its input under fuzz/artifacts/<target>/ and fails the script: turn it into a named
# regression test.
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

for t in "${targets[@]}"; do
    echo "== fuzzing $t for ${secs}s"
    (cd fuzz && CARGO_TARGET_DIR="$root/fuzz/target" cargo +nightly fuzz run "$t" "$corpus/$t" -- \
        -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1)
done
echo "== no crash in ${#targets[@]} target(s), ${secs}s each"
