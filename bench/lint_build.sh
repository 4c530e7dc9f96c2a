#!/usr/bin/env bash
# `airlift-pack lint` then `build` of a definition whose image is built from a local folder:
# two packager binaries side by side, alternating, each round from an empty cache.
#
# Usage: bench/lint_build.sh BEFORE_PACK AFTER_PACK [ROUNDS]
# Env:   LINT_BENCH_MIB  size of the build context in MiB (default 256: half pseudo-random bytes,
#                        half text, so gzip works on both kinds)
# Prints each round's lint, build and total wall seconds, and the build's `layerReused`.
# Not part of the test suite; nothing here is asserted.
set -euo pipefail
BEFORE=$1 AFTER=$2 ROUNDS=${3:-3}
MIB=${LINT_BENCH_MIB:-256}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/airlift-lint-bench.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

cp -r "$ROOT/bundles/demo" "$WORK/def"
big="$WORK/def/images/web/app/static/big"
mkdir -p "$big"
half=$((MIB / 2))
for ((i = 0; i < half / 4; i++)); do
  head -c $((4 << 20)) /dev/urandom >"$big/random-$i.bin"
  # (`yes` ends on SIGPIPE once `head` has enough.)
  yes "airlift lint bench line $i: the quick brown fox jumps over the lazy dog" | head -c $((4 << 20)) >"$big/text-$i.txt" || true
done
"$AFTER" keygen --out "$WORK/vendor" >/dev/null
# Files changed within two seconds of a build are not recorded for reuse.
sleep 3
export XDG_CACHE_HOME="$WORK/xdg" NO_COLOR=1

one() {
  local label=$1 pack=$2 t0 t1 t2 reused
  rm -rf "$WORK/cache" "$WORK/dist"
  sync
  local cache_args=()
  # A packager whose lint keeps nothing has no --cache-dir there.
  if "$pack" lint --help | grep -q -- --cache-dir; then cache_args=(--cache-dir "$WORK/cache"); fi
  t0=$(date +%s.%N)
  "$pack" lint "$WORK/def" "${cache_args[@]}" >/dev/null
  t1=$(date +%s.%N)
  "$pack" --no-progress build "$WORK/def" --key "$WORK/vendor.key" --out "$WORK/dist" \
    --cache-dir "$WORK/cache" --output json >"$WORK/build.json"
  t2=$(date +%s.%N)
  reused=$(jq -r '[.images[].layerReused] | map(tostring) | join(",")' "$WORK/build.json")
  awk -v l="$label" -v a="$t0" -v b="$t1" -v c="$t2" -v r="$reused" \
    'BEGIN { printf "%-6s lint %.2f s  build %.2f s  total %.2f s  layerReused %s\n", l, b - a, c - b, c - a, r }'
}

echo "context: $(du -sm "$WORK/def/images/web" | cut -f1) MiB; $(date -u '+%Y-%m-%d %H:%M UTC'); load $(cut -d' ' -f1-3 /proc/loadavg)"
for ((r = 1; r <= ROUNDS; r++)); do
  if ((r % 2)); then one before "$BEFORE"; one after "$AFTER"; else one after "$AFTER"; one before "$BEFORE"; fi
done
