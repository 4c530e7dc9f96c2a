#!/usr/bin/env bash
# Airlift build/push benchmark: airlift-pack build vs skopeo (docker:// -> oci-archive:) and
# airlift-install push vs skopeo (oci-archive: -> docker://), in one run, on the same generated
# ~1 GiB image set served by real docker-registry instances on 127.0.0.1.
#
# Usage: bench/run.sh            (see bench/README.md)
# Env:   BENCH_SIZE_MIB   total unique layer content in MiB (default 1024; small values for a dry run)
#        BENCH_SET=low-sharing  eight equal layers, one shared by seven images (default: shared)
#        BENCH_KEEP=1     keep the temp folder for inspection
#        BENCH_OUT=DIR    write results there instead of bench/out
#        BENCH_NO_CARGO=1 skip `cargo build --release` (use the binaries already in target/release)
#        BENCH_ROUNDS=N   rounds of every comparison, alternating which tool goes first (default 3);
#                         the table gives medians, the list under it every round's figures
#        BENCH_WARMUP=0   no untimed round 0 before them (default 1: one)
# Writes bench/out/results.md (git-ignored) and prints the same table.
# Not part of the test suite; nothing here is asserted.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT_DIR="${BENCH_OUT:-$ROOT/bench/out}"
SIZE_MIB=${BENCH_SIZE_MIB:-1024}
SET=${BENCH_SET:-shared}
ROUNDS=${BENCH_ROUNDS:-3}
[[ "$ROUNDS" =~ ^[1-9][0-9]*$ ]] || { echo "error: BENCH_ROUNDS must be a whole number >= 1" >&2; exit 1; }
WARMUP=${BENCH_WARMUP:-1}
[[ "$WARMUP" == 0 || "$WARMUP" == 1 ]] || { echo "error: BENCH_WARMUP must be 0 or 1" >&2; exit 1; }
BIN="$ROOT/target/release"
PACK="$BIN/airlift-pack"
INSTALL="$BIN/airlift-install"
GEN="$BIN/airlift-bench-images"
REGISTRY_BIN=/usr/bin/docker-registry
TIME_BIN=/usr/bin/time

for tool in "$REGISTRY_BIN" "$TIME_BIN"; do
  [[ -x "$tool" ]] || { echo "error: $tool is missing (apt-get install docker-registry time)" >&2; exit 1; }
done
for tool in skopeo curl jq cargo awk; do
  command -v "$tool" >/dev/null || { echo "error: $tool is missing from PATH" >&2; exit 1; }
done

WORK=$(mktemp -d "${TMPDIR:-/tmp}/airlift-bench.XXXXXX")
FS_TYPE=$(df --output=fstype "$WORK" | tail -n 1)
declare -A REG_PID=() REG_PORT=()

cleanup() {
  local name
  for name in "${!REG_PID[@]}"; do
    kill "${REG_PID[$name]}" 2>/dev/null || true
    wait "${REG_PID[$name]}" 2>/dev/null || true
  done
  if [[ "${BENCH_KEEP:-0}" == 1 ]]; then
    echo "kept $WORK" >&2
  else
    rm -rf "$WORK"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log() { printf '[%s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

# start_registry NAME: a plain-HTTP docker-registry on 127.0.0.1 with fresh storage under
# $WORK/NAME; sets REG_PID[NAME] and REG_PORT[NAME].
start_registry() {
  local name=$1 dir="$WORK/$1" port attempt
  rm -rf "$dir"
  mkdir -p "$dir/storage"
  for attempt in 1 2 3 4 5; do
    port=$((20000 + RANDOM % 40000))
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then continue; fi
    cat >"$dir/config.yml" <<EOF
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $dir/storage
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$port
EOF
    "$REGISTRY_BIN" serve "$dir/config.yml" >"$dir/registry.log" 2>&1 &
    REG_PID[$name]=$!
    local i
    for i in $(seq 1 100); do
      if curl -fsS -o /dev/null "http://127.0.0.1:$port/v2/" 2>/dev/null; then
        REG_PORT[$name]=$port
        return 0
      fi
      kill -0 "${REG_PID[$name]}" 2>/dev/null || break
      sleep 0.1
    done
    kill "${REG_PID[$name]}" 2>/dev/null || true
    wait "${REG_PID[$name]}" 2>/dev/null || true
    unset 'REG_PID[$name]'
  done
  echo "error: docker-registry '$name' did not start; log:" >&2
  cat "$dir/registry.log" >&2
  exit 1
}

stop_registry() {
  local name=$1
  kill "${REG_PID[$name]}" 2>/dev/null || true
  wait "${REG_PID[$name]}" 2>/dev/null || true
  unset 'REG_PID[$name]'
}

# timed NAME CMD...: flushes what earlier steps left unwritten (so no step pays for another's
# writeback), then runs CMD under /usr/bin/time; sets RSS_KIB and SECS, and on success appends
# them to $WORK/samples/NAME.{secs,rss}; returns CMD's status. stdout goes to $WORK/NAME.out,
# stderr to $WORK/NAME.err.
timed() {
  local name=$1 status=0
  shift
  sync
  "$TIME_BIN" -f '%M %e' -o "$WORK/$name.time" "$@" >"$WORK/$name.out" 2>"$WORK/$name.err" || status=$?
  read -r RSS_KIB SECS < <(tail -n 1 "$WORK/$name.time")
  if [[ $status == 0 ]]; then
    mkdir -p "$WORK/samples"
    echo "$SECS" >>"$WORK/samples/$name.secs"
    echo "$RSS_KIB" >>"$WORK/samples/$name.rss"
    echo "${ROUND:-0} $SECS" >>"$WORK/samples/$name.rounds"
  fi
  return "$status"
}

# med NAME: the median of NAME's recorded wall times (the lower middle one for an even count),
# or nothing when none was recorded. peak NAME: the largest recorded peak RSS in KiB.
med() {
  [[ -s "$WORK/samples/$1.secs" ]] || return 0
  sort -g "$WORK/samples/$1.secs" | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'
}
peak() {
  [[ -s "$WORK/samples/$1.rss" ]] || return 0
  sort -g "$WORK/samples/$1.rss" | tail -n 1
}
# every NAME: each round's wall time, in order ("2.51 2.47 2.60").
every() { [[ -s "$WORK/samples/$1.secs" ]] && paste -sd' ' "$WORK/samples/$1.secs" || echo n/a; }
# paired NUM DEN OP GOAL: NUM / DEN round by round (both measured in the same round), their
# median, and in how many rounds the ratio meets OP GOAL ("2.61 3.09 4.02; median 3.09; >= 3 in
# 2 of 3 rounds"). Rounds where either step failed are left out (pairs are matched by round).
paired() {
  [[ -s "$WORK/samples/$1.rounds" && -s "$WORK/samples/$2.rounds" ]] || { echo n/a; return 0; }
  awk -v op="$3" -v g="$4" '
    NR == FNR { num[$1] = $2; next }
    ($1 in num) && $2 > 0 { r[++n] = num[$1] / $2; line = line (n > 1 ? " " : "") sprintf("%.2f", r[n])
                            if ((op == ">=") ? (r[n] >= g) : (r[n] <= g)) ok++ }
    END { if (!n) { print "n/a"; exit }
          for (i = 1; i <= n; i++) s[i] = r[i]
          for (i = 2; i <= n; i++) for (j = i; j > 1 && s[j - 1] > s[j]; j--) { t = s[j]; s[j] = s[j - 1]; s[j - 1] = t }
          printf "%s; median %.2f; %s %s in %d of %d rounds\n", line, s[int((n + 1) / 2)], op, g, ok + 0, n }' \
    "$WORK/samples/$1.rounds" "$WORK/samples/$2.rounds"
}

mib() { awk -v b="$1" 'BEGIN { printf "%.1f", b / 1048576 }'; }
rate() { awk -v b="$1" -v s="$2" 'BEGIN { if (s > 0) printf "%.1f", b / 1048576 / s; else print "n/a" }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }
# The ratio of two measured times as "N.NNx", or why there is none.
ratio_x() {
  if [[ -z "$1" || -z "$2" ]]; then echo "n/a"
  elif [[ "$(ratio "$1" "$2")" == n/a ]]; then echo "n/a (the copy took under 10 ms)"
  else echo "$(ratio "$1" "$2")x"; fi
}
kib_mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }
verdict() { awk -v v="$1" -v op="$2" -v g="$3" 'BEGIN {
  if (v == "n/a" || v == "") { print "not measured"; exit }
  ok = (op == ">=") ? (v + 0 >= g + 0) : (v + 0 < g + 0)
  print ok ? "met" : "NOT met" }'; }

# --- 0. binaries ---------------------------------------------------------------------------
log "building release binaries"
BUILD_START=$(date +%s)
if [[ "${BENCH_NO_CARGO:-0}" == 1 ]]; then
  log "BENCH_NO_CARGO=1: using the binaries already in $BIN"
else
  (cd "$ROOT" && cargo build --release -p airlift-pack -p airlift-install -p airlift-testkit) >&2
fi
log "cargo build took $(($(date +%s) - BUILD_START)) s (not counted below)"
BENCH_START=$(date +%s)
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
# Memory at the start and end: what a write into the page cache costs can depend on it (a full
# page cache is reclaimed first; on a VM that gives free memory back to its host, memory the
# guest has not used lately may be faulted in by the host first). See docs/benchmarks.md.
meminfo() { awk -v k="$1:" '$1 == k { printf "%.1f", $2 / 1048576 }' /proc/meminfo; }
MEM_START="$(meminfo MemFree) GiB free, $(meminfo Cached) GiB page cache"

HAVE_BUILD=0 HAVE_PUSH=0
"$PACK" build --help >/dev/null 2>&1 && HAVE_BUILD=1
"$INSTALL" push --help >/dev/null 2>&1 && HAVE_PUSH=1

# --- 1. image set, SaaS registry, seeding ----------------------------------------------------
log "generating the image set (${SIZE_MIB} MiB of layer content)"
"$GEN" --out "$WORK/images" --size-mib "$SIZE_MIB" --gzip-level 1 --set "$SET" >"$WORK/images.json"
UNIQUE_BYTES=$(jq -r .uniqueBytes "$WORK/images.json")
UNIQUE_BLOBS=$(jq -r .uniqueBlobs "$WORK/images.json")
REFERENCED_BYTES=$(jq -r '[.images[].blobBytes] | add' "$WORK/images.json")
mapfile -t TAGS < <(jq -r '.images[].tag' "$WORK/images.json")

export XDG_CACHE_HOME="$WORK/xdg-cache" XDG_STATE_HOME="$WORK/xdg-state"   # our proofs start empty
export TMPDIR="$WORK/tmp"   # skopeo's oci-archive temp folders land here and are cleaned up
mkdir -p "$TMPDIR"

start_registry saas
SAAS="127.0.0.1:${REG_PORT[saas]}"
log "seeding the SaaS registry $SAAS with skopeo"
for tag in "${TAGS[@]}"; do
  skopeo copy -q --dest-tls-verify=false "oci:$WORK/images:$tag" "docker://$SAAS/acme/$tag:1.0" >&2
  want=$(jq -r --arg t "$tag" '.images[] | select(.tag == $t) | .digest' "$WORK/images.json")
  got="sha256:$(skopeo inspect --raw --tls-verify=false "docker://$SAAS/acme/$tag:1.0" | sha256sum | cut -d' ' -f1)"
  [[ "$got" == "$want" ]] || { echo "error: seeded $tag has digest $got, expected $want" >&2; exit 1; }
done

# --- 2. build ---------------------------------------------------------------------------------
DEF="$WORK/def"
mkdir -p "$DEF/manifests"
{
  cat <<EOF
apiVersion: airlift.dev/v1alpha1
kind: BundleDefinition
metadata:
  name: bench
  version: 1.0.0
  channel: stable
  vendor: Airlift Bench
requirements:
  kubernetes: ">=1.28.0"
  platforms:
    - linux/amd64
components:
  - name: app
    description: Every benchmark image in one Deployment.
    mode: required
    layer: workload
    manifests:
      - manifests
    images:
EOF
  for tag in "${TAGS[@]}"; do echo "      - reference: $SAAS/acme/$tag:1.0"; done
} >"$DEF/airlift.yaml"
{
  cat <<EOF
apiVersion: apps/v1
kind: Deployment
metadata:
  name: bench
spec:
  selector:
    matchLabels: {app: bench}
  template:
    metadata:
      labels: {app: bench}
    spec:
      containers:
EOF
  for tag in "${TAGS[@]}"; do
    printf '        - name: %s\n          image: %s\n' "$tag" "$SAAS/acme/$tag:1.0"
  done
} >"$DEF/manifests/app.yaml"

BUILD_NOTE="" PUSH_NOTE="" BUNDLE="" BUNDLE_BYTES=""
if [[ $HAVE_BUILD == 1 ]]; then "$PACK" keygen --out "$WORK/vendor" >/dev/null; fi

# skopeo_each NAME TLS_FLAG FROM TO: times `skopeo copy -q TLS_FLAG FROM TO` for every image, one
# after the other, with @TAG@ in FROM and TO standing for the image's tag; exits on a failure.
skopeo_each() {
  local name=$1
  shift
  timed "$name" bash -c '
    set -euo pipefail
    tls=$1 from=$2 to=$3; shift 3
    for tag in "$@"; do
      skopeo copy -q "$tls" "${from//@TAG@/$tag}" "${to//@TAG@/$tag}"
    done' _ "$@" "${TAGS[@]}" \
    || { echo "error: $name failed:" >&2; tail -n 20 "$WORK/$name.err" >&2; exit 1; }
}

# skopeo: one oci-archive per image (what skopeo users do), from the same registry; then the
# stronger baseline: every image into one shared OCI layout (a blob shared by several images is
# fetched once), then one tar of it, flushed to disk as our bundle is.
skopeo_build() {
  rm -rf "$WORK/archives" "$WORK/sk-layout"
  mkdir -p "$WORK/archives"
  log "round $ROUND build: skopeo copy docker:// -> oci-archive: (${#TAGS[@]} images)"
  skopeo_each skopeo-build --src-tls-verify=false "docker://$SAAS/acme/@TAG@:1.0" \
    "oci-archive:$WORK/archives/@TAG@.tar:@TAG@"
  SK_ARCHIVE_BYTES=$(du -cb "$WORK"/archives/*.tar 2>/dev/null | tail -n 1 | cut -f1)
  log "round $ROUND build: skopeo copy docker:// -> one oci: layout, then tar and sync"
  timed skopeo-layout bash -c '
    set -euo pipefail
    saas=$1 dir=$2; shift 2
    mkdir -p "$dir/layout"
    for tag in "$@"; do
      skopeo copy -q --src-tls-verify=false "docker://$saas/acme/$tag:1.0" "oci:$dir/layout:$tag"
    done
    tar -cf "$dir/layout.tar" -C "$dir/layout" .
    sync "$dir/layout.tar"' _ "$SAAS" "$WORK/sk-layout" "${TAGS[@]}" \
    || { echo "error: skopeo layout build failed:" >&2; tail -n 20 "$WORK/skopeo-layout.err" >&2; exit 1; }
  rm -rf "$WORK/sk-layout"
}

# The warm rebuild (into an empty folder, from the cold build's cache, while the cold build's
# bundle is kept: it writes a copy). Then the rebuilds that write nothing: the same build again
# into that folder (the file there is already the bundle), and once that output is deleted (the
# cache's link to it becomes the output).
pack_warm() {
  rm -rf "$WORK/dist"
  log "round $ROUND build: airlift-pack build, warm cache"
  if timed pack-warm "$PACK" --no-progress build "$DEF" --key "$WORK/vendor.key" --out "$WORK/dist" \
      --cache-dir "$WORK/cache" --insecure-registry "$SAAS" --output json; then
    cmp -s "$BUNDLE" "$(ls "$WORK"/dist/*.airlift)" || BUILD_NOTE+="round $ROUND: the warm rebuild's bundle differs from the cold one's. "
    [[ "$(jq -r '.reused // "written"' "$WORK/pack-warm.out")" == written ]] || BUILD_NOTE+="round $ROUND: the warm rebuild did not write its bundle. "
    pack_unchanged pack-same unchanged
    rm -f "$WORK"/dist/*.airlift
    pack_unchanged pack-linked linked
  else
    BUILD_NOTE+="round $ROUND: the warm rebuild failed: $(tail -n 3 "$WORK/pack-warm.err" | tr '\n' ' ') "
  fi
  rm -rf "$WORK/dist"
}

# pack_unchanged NAME HOW: a rebuild into $WORK/dist that must report `reused: HOW`.
pack_unchanged() {
  log "round $ROUND build: airlift-pack build, unchanged inputs ($2)"
  if timed "$1" "$PACK" --no-progress build "$DEF" --key "$WORK/vendor.key" --out "$WORK/dist" \
      --cache-dir "$WORK/cache" --insecure-registry "$SAAS" --output json; then
    cmp -s "$BUNDLE" "$(ls "$WORK"/dist/*.airlift)" || BUILD_NOTE+="round $ROUND: the $2 rebuild's bundle differs from the cold one's. "
    [[ "$(jq -r '.reused // "written"' "$WORK/$1.out")" == "$2" ]] || BUILD_NOTE+="round $ROUND: the rebuild expected to be $2 was not. "
  else
    BUILD_NOTE+="round $ROUND: the $2 rebuild failed: $(tail -n 3 "$WORK/$1.err" | tr '\n' ' ') "
  fi
}

# The warm rebuild's yardsticks: `cp` of the bundle file (also from the page cache); `cp` that
# also flushes the copy to disk, as the packager flushes the bundle it writes; and, where the
# filesystem shares extents (XFS with reflink, Btrfs: coreutils 9 `cp` asks for a reflink by
# default, and so does the packager's kernel-side copy), `cp --reflink=never`, the copy of the bytes.
copies() {
  log "round $ROUND build: cp of the bundle file; cp, then sync of the copy; cp --reflink=never"
  timed cp-bundle cp "$BUNDLE" "$WORK/bundle-copy.airlift" || true
  rm -f "$WORK/bundle-copy.airlift"
  timed cp-sync-bundle sh -c 'cp "$1" "$2" && sync "$2"' cp-sync "$BUNDLE" "$WORK/bundle-copy.airlift" || true
  rm -f "$WORK/bundle-copy.airlift"
  timed cp-never-bundle cp --reflink=never "$BUNDLE" "$WORK/bundle-copy.airlift" || true
  rm -f "$WORK/bundle-copy.airlift"
}

# The same images read from their OCI layout (each layer read in place, written once), cold and
# warm, against archiving the layout as it is: `tar` of it, flushed.
DEF_L="$WORK/def-layout"
mkdir -p "$DEF_L"
cp -r "$DEF/manifests" "$DEF_L/"
ln -s "$WORK/images" "$DEF_L/images"
sed -E 's|^      - reference: ([^ ]+)/acme/([^:]+):1\.0$|&\n        source: {ociLayout: {path: images, tag: \2}}|' \
  "$DEF/airlift.yaml" >"$DEF_L/airlift.yaml"
layout_builds() {
  rm -rf "$WORK/dist" "$WORK/cache-layout"
  log "round $ROUND build: airlift-pack build from the OCI layout, cold cache, then warm"
  if timed pack-layout "$PACK" --no-progress build "$DEF_L" --key "$WORK/vendor.key" --out "$WORK/dist" \
      --cache-dir "$WORK/cache-layout" --output json; then
    rm -rf "$WORK/dist"
    timed pack-layout-warm "$PACK" --no-progress build "$DEF_L" --key "$WORK/vendor.key" \
      --out "$WORK/dist" --cache-dir "$WORK/cache-layout" --output json || true
    BL_CACHE=$(du -sb "$WORK/cache-layout" | cut -f1)
  else
    BUILD_NOTE+="round $ROUND: the build from the OCI layout failed: $(tail -n 3 "$WORK/pack-layout.err" | tr '\n' ' ') "
  fi
  rm -rf "$WORK/dist" "$WORK/cache-layout"
  log "round $ROUND build: tar of the OCI layout, then sync"
  timed tar-layout sh -c 'tar -chf "$2" -C "$1" . && sync "$2"' tar-layout "$WORK/images" \
    "$WORK/layout.tar" || true
  rm -f "$WORK/layout.tar"
}

# Our build: cold (empty cache), the warm rebuild and the copies (in the round's order),
# --no-cache (nothing reused, layers written into the bundle only), and the layout builds.
our_build() {
  [[ $HAVE_BUILD == 1 ]] || { BUILD_NOTE="airlift-pack build does not exist in this tree yet; not measured. "; return; }
  rm -rf "$WORK/dist" "$WORK/cache"
  log "round $ROUND build: airlift-pack build, cold cache"
  if ! timed pack-cold "$PACK" --no-progress build "$DEF" --key "$WORK/vendor.key" --out "$WORK/dist" \
      --cache-dir "$WORK/cache" --insecure-registry "$SAAS" --output json; then
    BUILD_NOTE+="round $ROUND: airlift-pack build failed: $(tail -n 5 "$WORK/pack-cold.err" | tr '\n' ' ') "
    return
  fi
  local built
  built=$(ls "$WORK"/dist/*.airlift)
  BUNDLE_BYTES=$(stat -c %s "$built")
  if [[ -n "$BUNDLE" ]]; then
    cmp -s "$BUNDLE" "$built" || BUILD_NOTE+="round $ROUND: the cold build's bundle differs from the first one's. "
  fi
  BUNDLE="$WORK/bundle.airlift"
  mv "$built" "$BUNDLE"
  rm -rf "$WORK/dist"
  if ((ROUND % 2)); then pack_warm; copies; else copies; pack_warm; fi
  rm -rf "$WORK/dist"
  log "round $ROUND build: airlift-pack build --no-cache"
  if timed pack-nocache "$PACK" --no-progress build "$DEF" --key "$WORK/vendor.key" --out "$WORK/dist" \
      --no-cache --insecure-registry "$SAAS" --output json; then
    cmp -s "$BUNDLE" "$(ls "$WORK"/dist/*.airlift)" || BUILD_NOTE+="round $ROUND: the --no-cache bundle differs from the cold one's. "
  else
    BUILD_NOTE+="round $ROUND: the --no-cache build failed: $(tail -n 3 "$WORK/pack-nocache.err" | tr '\n' ' ') "
  fi
  rm -rf "$WORK/dist"
  layout_builds
}

# Our push into a fresh registry (every pushed digest checked with skopeo), then the same bundle
# again into it.
our_push() {
  if [[ $HAVE_PUSH == 0 ]]; then PUSH_NOTE="airlift-install push does not exist in this tree yet; not measured. "; return; fi
  if [[ -z "$BUNDLE" ]]; then PUSH_NOTE="no bundle was built, so airlift-install push was not measured. "; return; fi
  start_registry target
  TARGET="127.0.0.1:${REG_PORT[target]}"
  log "round $ROUND push: airlift-install push into a fresh registry $TARGET, then again"
  if timed push-1 "$INSTALL" push "$BUNDLE" --registry "$TARGET/customer" --key "$WORK/vendor.pub" \
      --insecure-registry "$TARGET" --output json; then
    for tag in "${TAGS[@]}"; do
      want=$(jq -r --arg t "$tag" '.images[] | select(.tag == $t) | .digest' "$WORK/images.json")
      got="sha256:$(skopeo inspect --raw --tls-verify=false "docker://$TARGET/customer/acme/$tag:1.0" | sha256sum | cut -d' ' -f1)"
      [[ "$got" == "$want" ]] || PUSH_NOTE+="round $ROUND: pushed $tag has digest $got, expected $want. "
    done
    timed push-2 "$INSTALL" push "$BUNDLE" --registry "$TARGET/customer" --key "$WORK/vendor.pub" \
      --insecure-registry "$TARGET" --output json \
      || PUSH_NOTE+="round $ROUND: the second push failed: $(tail -n 3 "$WORK/push-2.err" | tr '\n' ' ') "
  else
    PUSH_NOTE+="round $ROUND: airlift-install push failed: $(tail -n 5 "$WORK/push-1.err" | tr '\n' ' ') "
  fi
  stop_registry target
}

# skopeo's push of its archives into a fresh registry.
skopeo_push() {
  start_registry target
  TARGET="127.0.0.1:${REG_PORT[target]}"
  log "round $ROUND push: skopeo copy oci-archive: -> docker:// into a fresh registry $TARGET"
  skopeo_each skopeo-push --dest-tls-verify=false "oci-archive:$WORK/archives/@TAG@.tar:@TAG@" \
    "docker://$TARGET/customer/acme/@TAG@:1.0"
  stop_registry target
}

# --- 2, 3. build and push, in rounds: odd rounds start with skopeo, even rounds with ours -----
# Round 0 (BENCH_WARMUP=1, the default) runs every step once untimed: the first write of each
# kind on a machine is often far slower than the next (memory the page cache has not used yet;
# see docs/benchmarks.md), and it would fall on whichever tool happens to go first.
if [[ "$WARMUP" == 1 ]]; then
  ROUND=0
  log "round 0: every step once, not counted"
  skopeo_build; our_build; our_push; skopeo_push
  rm -rf "$WORK/samples"
fi
for ((ROUND = 1; ROUND <= ROUNDS; ROUND++)); do
  if ((ROUND % 2)); then
    skopeo_build; our_build; our_push; skopeo_push
  else
    our_build; skopeo_build; skopeo_push; our_push
  fi
done
stop_registry saas
BENCH_SECS=$(($(date +%s) - BENCH_START))

B_SECS=$(med pack-cold) B_RSS=$(peak pack-cold) BW_SECS=$(med pack-warm)
BS_SECS=$(med pack-same) BK_SECS=$(med pack-linked)
CP_SECS=$(med cp-bundle) CPS_SECS=$(med cp-sync-bundle) CPN_SECS=$(med cp-never-bundle)
BN_SECS=$(med pack-nocache) BN_RSS=$(peak pack-nocache)
BL_SECS=$(med pack-layout) BL_RSS=$(peak pack-layout) BLW_SECS=$(med pack-layout-warm) TL_SECS=$(med tar-layout)
SK_BUILD_SECS=$(med skopeo-build) SK_BUILD_RSS=$(peak skopeo-build) SK_LAYOUT_SECS=$(med skopeo-layout)
P_SECS=$(med push-1) P_RSS=$(peak push-1) P2_SECS=$(med push-2) P2_RSS=$(peak push-2)
SK_PUSH_SECS=$(med skopeo-push) SK_PUSH_RSS=$(peak skopeo-push)
BL_CACHE=${BL_CACHE:-}

# --- 4. report --------------------------------------------------------------------------------
na() { [[ -n "$1" ]] && echo "$1" || echo "n/a"; }
B_TPUT=$([[ -n "$B_SECS" ]] && rate "$UNIQUE_BYTES" "$B_SECS" || echo n/a)
SK_B_TPUT=$(rate "$UNIQUE_BYTES" "$SK_BUILD_SECS")
B_RATIO=$([[ -n "$B_SECS" ]] && ratio "$SK_BUILD_SECS" "$B_SECS" || echo n/a)
BL_RATIO=$([[ -n "$B_SECS" ]] && ratio "$SK_LAYOUT_SECS" "$B_SECS" || echo n/a)
BN_RATIO=$([[ -n "$BN_SECS" ]] && ratio "$SK_LAYOUT_SECS" "$BN_SECS" || echo n/a)
# Issue 12's goals: pack >= 3x skopeo on the shared set, >= 2.5x on the low-sharing one.
B_GOAL=$([[ "$SET" == low-sharing ]] && echo 2.5 || echo 3)
P_TPUT=$([[ -n "$P_SECS" ]] && rate "$UNIQUE_BYTES" "$P_SECS" || echo n/a)
SK_P_TPUT=$(rate "$UNIQUE_BYTES" "$SK_PUSH_SECS")
P_RATIO=$([[ -n "$P_SECS" ]] && ratio "$SK_PUSH_SECS" "$P_SECS" || echo n/a)
B_RSS_MIB=$([[ -n "$B_RSS" ]] && kib_mib "$B_RSS" || echo n/a)
P_RSS_MIB=$([[ -n "$P_RSS" ]] && kib_mib "$P_RSS" || echo n/a)
P2_PCT=$([[ -n "$P2_SECS" && -n "$P_SECS" ]] && awk -v a="$P2_SECS" -v b="$P_SECS" 'BEGIN { printf "%.1f", 100 * a / b }' || echo n/a)
OVERHEAD_PCT=$([[ -n "$BUNDLE_BYTES" ]] && awk -v a="$BUNDLE_BYTES" -v b="$UNIQUE_BYTES" 'BEGIN { printf "%.3f", 100 * (a - b) / b }' || echo n/a)
OVERHEAD_ABS=$([[ -n "$OVERHEAD_PCT" && "$OVERHEAD_PCT" != n/a ]] && awk -v v="$OVERHEAD_PCT" 'BEGIN { print (v < 0 ? -v : v) }' || echo n/a)

mkdir -p "$OUT_DIR"
REPORT="$OUT_DIR/results.md"
{
  echo "## Build and push benchmark, $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo
  echo "Work folder on $FS_TYPE (on XFS with reflink or Btrfs, \`cp\` and the packager share extents instead of copying)."
  echo "Machine: $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')), $(free -g | awk '/Mem:/ {print $2}') GiB RAM, Linux $(uname -r)."
  echo "Versions: $("$PACK" --version 2>/dev/null || echo 'airlift-pack ?'), $("$INSTALL" --version 2>/dev/null || echo 'airlift-install ?'), $(skopeo --version), $("$REGISTRY_BIN" --version | awk '{print "docker-registry " $3}'), $(rustc --version | cut -d' ' -f1-2)."
  echo "Image set ($SET): ${#TAGS[@]} linux/amd64 images (${TAGS[*]}), $UNIQUE_BLOBS unique blobs, $UNIQUE_BYTES unique blob bytes ($(mib "$UNIQUE_BYTES") MiB), $REFERENCED_BYTES bytes referenced by the images together ($(mib "$REFERENCED_BYTES") MiB)."
  echo "Throughput = unique blob bytes of the set / wall time, for both tools; ratio = skopeo's wall time / ours. Peak RSS from \`/usr/bin/time -f %M\` (skopeo: its largest process)."
  echo "Each time is the median of $ROUNDS round(s), alternating which tool goes first (odd rounds skopeo, even rounds ours), every step started after a \`sync\`$([[ "$WARMUP" == 1 ]] && echo ', after one untimed round of every step'); peak RSS is the largest of the rounds. Every round's figures are listed under the table."
  echo
  echo "| measure | Airlift | skopeo | ratio | goal | result |"
  echo "| --- | --- | --- | --- | --- | --- |"
  echo "| build, cold cache: wall time | $(na "$B_SECS") s | $SK_BUILD_SECS s | | | |"
  echo "| build throughput | $B_TPUT MiB/s | $SK_B_TPUT MiB/s | ${B_RATIO}x | >= ${B_GOAL}x | $(verdict "$B_RATIO" '>=' "$B_GOAL") |"
  echo "| build against skopeo into one shared layout + tar + sync | $(na "$B_SECS") s | $SK_LAYOUT_SECS s | ${BL_RATIO}x | >= ${B_GOAL}x | $(verdict "$BL_RATIO" '>=' "$B_GOAL") |"
  echo "| build --no-cache (nothing kept) against the same | $(na "$BN_SECS") s, peak RSS $([[ -n "$BN_RSS" ]] && kib_mib "$BN_RSS" || echo n/a) MiB | $SK_LAYOUT_SECS s | ${BN_RATIO}x | | |"
  echo "| build peak RSS | $B_RSS_MIB MiB | $(kib_mib "$SK_BUILD_RSS") MiB | | < 64 MiB | $(verdict "$B_RSS_MIB" '<' 64) |"
  echo "| bytes each tool copied / wall time | $B_TPUT MiB/s | $(rate "$REFERENCED_BYTES" "$SK_BUILD_SECS") MiB/s (skopeo fetches shared layers once per image) | | | |"
  echo "| build, warm cache, the earlier output kept (a copy is written): wall time | $(na "$BW_SECS") s | \`cp\` of the bundle: $(na "$CP_SECS") s | $(ratio_x "$BW_SECS" "$CP_SECS") of cp | <= 1.2x cp | $(if [[ "$CP_SECS" == 0.00 ]]; then echo 'NOT met (`cp` took under 10 ms)'; elif [[ -n "$BW_SECS" && -n "$CP_SECS" ]]; then verdict "$(ratio "$BW_SECS" "$CP_SECS")" '<' 1.2001; else echo 'not measured'; fi) |"
  echo "| rebuild, unchanged inputs, into the same folder (the file there is the bundle: nothing written) | $(na "$BS_SECS") s | \`cp\` of the bundle: $(na "$CP_SECS") s | $(ratio_x "$BS_SECS" "$CP_SECS") of cp | <= 1.2x cp | $(if [[ -n "$BS_SECS" && -n "$CP_SECS" && "$CP_SECS" != 0.00 ]]; then verdict "$(ratio "$BS_SECS" "$CP_SECS")" '<' 1.2001; else echo 'not measured'; fi) |"
  echo "| rebuild, unchanged inputs, output deleted before (the cache's link becomes it: nothing written) | $(na "$BK_SECS") s | \`cp\` of the bundle: $(na "$CP_SECS") s | $(ratio_x "$BK_SECS" "$CP_SECS") of cp | <= 1.2x cp | $(if [[ -n "$BK_SECS" && -n "$CP_SECS" && "$CP_SECS" != 0.00 ]]; then verdict "$(ratio "$BK_SECS" "$CP_SECS")" '<' 1.2001; else echo 'not measured'; fi) |"
  echo "| build, warm cache, against a copy of the bytes | $(na "$BW_SECS") s | \`cp --reflink=never\`: $(na "$CPN_SECS") s | $(ratio_x "$BW_SECS" "$CPN_SECS") | (context: the work folder is on $FS_TYPE) | |"
  echo "| build, warm cache, against a flushed copy | $(na "$BW_SECS") s | \`cp\` + \`sync FILE\`: $(na "$CPS_SECS") s | $(ratio_x "$BW_SECS" "$CPS_SECS") | (context: the packager flushes its bundle) | |"
  echo "| build from the OCI layout, cold cache | $(na "$BL_SECS") s, peak RSS $([[ -n "$BL_RSS" ]] && kib_mib "$BL_RSS" || echo n/a) MiB, cache kept $(na "$BL_CACHE") B | \`tar\` of the layout + \`sync FILE\`: $(na "$TL_SECS") s | $([[ -n "$BL_SECS" && -n "$TL_SECS" ]] && ratio "$BL_SECS" "$TL_SECS" || echo n/a)x of tar | | |"
  echo "| build from the OCI layout, warm cache | $(na "$BLW_SECS") s | | | | |"
  echo "| output size | $(na "$BUNDLE_BYTES") B (bundle) vs $UNIQUE_BYTES B unique blobs: ${OVERHEAD_PCT}% | $SK_ARCHIVE_BYTES B (${#TAGS[@]} archives) | | within 0.5% | $(verdict "$OVERHEAD_ABS" '<' 0.5) |"
  echo "| push into a fresh registry: wall time | $(na "$P_SECS") s | $SK_PUSH_SECS s | | | |"
  echo "| push throughput | $P_TPUT MiB/s | $SK_P_TPUT MiB/s | ${P_RATIO}x | >= 2x | $(verdict "$P_RATIO" '>=' 2) |"
  echo "| push peak RSS | $P_RSS_MIB MiB | $(kib_mib "$SK_PUSH_RSS") MiB | | < 64 MiB | $(verdict "$P_RSS_MIB" '<' 64) |"
  echo "| second push of the same bundle | $(na "$P2_SECS") s (${P2_PCT}% of the first), peak RSS $([[ -n "$P2_RSS" ]] && kib_mib "$P2_RSS" || echo n/a) MiB | | | < 5% | $(verdict "$P2_PCT" '<' 5) |"
  echo
  echo "Ratios round by round (each pair measured in the same round), against the goals:"
  echo
  echo "- build, skopeo's layout + tar + sync / ours: $(paired skopeo-layout pack-cold '>=' "$B_GOAL")"
  echo "- warm rebuild / \`cp\` of the bundle: $(paired pack-warm cp-bundle '<=' 1.2)"
  echo "- push, skopeo's / ours: $(paired skopeo-push push-1 '>=' 2)"
  echo
  echo "Every round, wall seconds in round order:"
  echo
  for name in skopeo-build skopeo-layout pack-cold pack-warm pack-same pack-linked cp-bundle cp-sync-bundle cp-never-bundle pack-nocache pack-layout pack-layout-warm tar-layout push-1 push-2 skopeo-push; do
    echo "- \`$name\`: $(every "$name")"
  done
  echo
  j() { [[ -s "$WORK/$1.out" ]] && jq -r "$2" "$WORK/$1.out" 2>/dev/null || echo n/a; }
  echo "Transfers, from our commands' \`--output json\`: cold build downloaded $(j pack-cold .downloadedBytes) B (its unique blobs: $(j pack-cold .uniqueBytes) B without image manifests), warm rebuild downloaded $(j pack-warm .downloadedBytes) B;" \
    "first push sent $(j push-1 .bytesPushed) B and mounted $(j push-1 .bytesMounted) B across repositories; second push sent $(j push-2 .bytesPushed) B and skipped $(j push-2 .bytesSkipped) B." \
    "Push checks the signature, then hashes each blob it sends while the blob streams (XDG_STATE_HOME is fresh for each bench run, so no recorded proof skips that); the second push finds every blob by HEAD and reads none."
  echo
  echo "Bench run (generation, seeding, all copies) took ${BENCH_SECS} s. Load average at its start: $LOAD_START; at its end: $(cut -d' ' -f1-3 /proc/loadavg) (other work on the machine slows both tools)."
  echo "Memory at its start: $MEM_START; at its end: $(meminfo MemFree) GiB free, $(meminfo Cached) GiB page cache."
  [[ -z "$BUILD_NOTE" ]] || echo "Build note: $BUILD_NOTE"
  [[ -z "$PUSH_NOTE" ]] || echo "Push note: $PUSH_NOTE"
} >"$REPORT"
for f in pack-cold pack-warm pack-same pack-linked pack-nocache push-1 push-2; do
  if [[ -s "$WORK/$f.out" ]]; then cp "$WORK/$f.out" "$OUT_DIR/$f.json"; fi
done
cat "$REPORT"
log "wrote $REPORT"
