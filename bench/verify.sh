#!/usr/bin/env bash
# Verify benchmark: `airlift-install verify` (signature + every digest) against
# `openssl dgst -sha256` on the same bundle file, with peak RSS from GNU time, at 1 GiB and 4 GiB.
#
# Usage: bench/verify.sh
# Env:   VERIFY_SIZES_MIB  space-separated layer content sizes in MiB (default "1024 4096")
#        VERIFY_RUNS       timed runs per tool and size, alternating (default 3)
#        BENCH_KEEP=1      keep the temp folder
# Bundles are generated with the testkit image generator and written through the bundle library
# (crates/bundle/examples/layout_to_bundle.rs). Files are read warm (page cache) by both tools;
# the first, untimed pass of each tool warms the cache. Not part of the test suite; nothing here
# is asserted.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SIZES=${VERIFY_SIZES_MIB:-"1024 4096"}
RUNS=${VERIFY_RUNS:-3}
TIME_BIN=/usr/bin/time
[[ -x "$TIME_BIN" ]] || { echo "error: $TIME_BIN is missing (apt-get install -y time)" >&2; exit 1; }
command -v openssl >/dev/null || { echo "error: openssl is missing" >&2; exit 1; }

log() { printf '[%s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

log "building release binaries"
(cd "$ROOT" && cargo build --release -q -p airlift-install -p airlift-pack \
  && cargo build --release -q -p airlift-testkit --bin airlift-bench-images \
  && cargo build --release -q -p airlift-bundle --example layout_to_bundle)
BIN="$ROOT/target/release"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/airlift-verify-bench.XXXXXX")
cleanup() { if [[ "${BENCH_KEEP:-0}" == 1 ]]; then echo "kept $WORK" >&2; else rm -rf "$WORK"; fi; }
trap cleanup EXIT

"$BIN/airlift-pack" keygen --out "$WORK/vendor" >/dev/null

# measure LABEL CMD...: runs CMD under GNU time, prints "seconds max_rss_kib".
measure() {
  local out
  out=$("$TIME_BIN" -f '%e %M' "$@" 2>&1 >/dev/null | tail -1)
  echo "$out"
}

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

printf '| bundle | airlift verify (median of %s) | openssl dgst -sha256 (median of %s) | ratio | airlift peak RSS |\n' "$RUNS" "$RUNS"
printf '| --- | --- | --- | --- | --- |\n'
for mib in $SIZES; do
  layout="$WORK/layout-$mib"
  bundle="$WORK/bench-$mib.airlift"
  log "generating $mib MiB of layers"
  "$BIN/airlift-bench-images" --out "$layout" --size-mib "$mib" >/dev/null
  "$BIN/examples/layout_to_bundle" "$layout" "$bundle" "$WORK/vendor.key" >/dev/null
  rm -rf "$layout"
  bytes=$(stat -c %s "$bundle")
  verify=("$BIN/airlift-install" verify "$bundle" --key "$WORK/vendor.pub" --no-cache --no-progress)
  "${verify[@]}" >/dev/null
  openssl dgst -sha256 "$bundle" >/dev/null
  a_times=() o_times=() rss=0
  for ((i = 0; i < RUNS; i++)); do
    read -r t m < <(measure "${verify[@]}")
    a_times+=("$t"); ((m > rss)) && rss=$m
    read -r t _ < <(measure openssl dgst -sha256 "$bundle")
    o_times+=("$t")
  done
  a=$(printf '%s\n' "${a_times[@]}" | median)
  o=$(printf '%s\n' "${o_times[@]}" | median)
  awk -v b="$bytes" -v a="$a" -v o="$o" -v r="$rss" -v all_a="${a_times[*]}" -v all_o="${o_times[*]}" 'BEGIN {
    mib = b / 1048576
    printf "| %.2f GiB | %.2f s, %.0f MiB/s (%s) | %.2f s, %.0f MiB/s (%s) | %.2f | %.1f MiB |\n",
      b / 1073741824, a, mib / a, all_a, o, mib / o, all_o, o / a, r / 1024
  }'
  rm -f "$bundle"
done
log "done; ratio = openssl time / airlift time (>= 0.80 is the goal)"
