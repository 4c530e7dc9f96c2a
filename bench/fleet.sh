#!/usr/bin/env bash
# Fleet rollout benchmark: `airlift-install fleet rollout` over N test clusters (default 10) at
# maxParallel 1, 2 and 5, against N sequential single-cluster `airlift-install upgrade`s; the
# apiserver requests per cluster (from each test cluster's request log) and peak RSS.
#
# Usage: bench/fleet.sh
# Env:   BENCH_CLUSTERS=N   clusters (default 10)
#        BENCH_PROFILE=debug|release (default release; debug uses target/debug as it is)
#        BENCH_NO_CARGO=1   skip cargo build
#        BENCH_KEEP=1       keep the temp folder
# Prints a markdown table. Everything runs on 127.0.0.1. Not part of the test suite.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
N=${BENCH_CLUSTERS:-10}
PROFILE=${BENCH_PROFILE:-release}
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/$PROFILE"
INSTALL="$BIN/airlift-install"
CLUSTER="$BIN/airlift-test-cluster"
REGISTRY_BIN=/usr/bin/docker-registry
TIME_BIN=/usr/bin/time
for tool in "$REGISTRY_BIN" "$TIME_BIN"; do
  [[ -x "$tool" ]] || { echo "error: $tool is missing" >&2; exit 1; }
done

WORK=$(mktemp -d "${TMPDIR:-/tmp}/airlift-fleet-bench.XXXXXX")
PIDS=()
cleanup() {
  local p
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  if [[ "${BENCH_KEEP:-0}" == 1 ]]; then echo "kept $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
log() { printf '[%s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

if [[ "${BENCH_NO_CARGO:-0}" != 1 ]]; then
  flag=(); [[ "$PROFILE" == release ]] && flag=(--release)
  (cd "$ROOT" && cargo build "${flag[@]}" -p airlift-install -p airlift-testkit \
    && cargo build "${flag[@]}" -p airlift-fleet --example fleet_bench_bundles) >&2
fi
BUNDLES_BIN="$BIN/examples/fleet_bench_bundles"

log "writing bundles"
mapfile -t OUT < <("$BUNDLES_BIN" "$WORK/bundles" 0.1.0 1.0.0 2.0.0 3.0.0 4.0.0)
KEY=${OUT[0]}; V0=${OUT[1]}; V1=${OUT[2]}; V2=${OUT[3]}; V5=${OUT[4]}; VSINGLE=${OUT[5]}

log "starting docker-registry"
PORT=$((20000 + RANDOM % 40000))
mkdir -p "$WORK/registry"
cat >"$WORK/registry/config.yml" <<CFG
version: 0.1
log: {level: error, accesslog: {disabled: true}}
storage: {filesystem: {rootdirectory: $WORK/registry/storage}}
http: {addr: 127.0.0.1:$PORT}
CFG
"$REGISTRY_BIN" serve "$WORK/registry/config.yml" >"$WORK/registry/log" 2>&1 &
PIDS+=($!)
for _ in $(seq 1 100); do curl -fsS -o /dev/null "http://127.0.0.1:$PORT/v2/" 2>/dev/null && break; sleep 0.1; done
REGISTRY="127.0.0.1:$PORT"

log "starting $N test clusters"
for i in $(seq 1 "$N"); do
  "$CLUSTER" --kubeconfig-out "$WORK/kc$i.yaml" --verbose >/dev/null 2>"$WORK/requests$i.log" &
  PIDS+=($!)
done
for i in $(seq 1 "$N"); do
  for _ in $(seq 1 100); do [[ -s "$WORK/kc$i.yaml" ]] && break; sleep 0.1; done
done

fleet_file() { # PARALLEL -> path
  local f="$WORK/fleet-$1.yaml" i
  {
    echo "apiVersion: airlift.dev/v1alpha1"; echo "kind: Fleet"; echo "metadata: {name: bench}"
    echo "defaults: {release: shop}"; echo "clusters:"
    for i in $(seq 1 "$N"); do
      echo "  - {name: c$i, kubeconfig: $WORK/kc$i.yaml, labels: {all: 'yes'}, registry: {destination: $REGISTRY/acme, insecure: true}}"
    done
    echo "rollout:"; echo "  stages:"
    echo "    - {name: all, selector: {all: 'yes'}, maxParallel: $1}"
  } >"$f"
  echo "$f"
}
requests() { cat "$WORK"/requests*.log | wc -l; }

timed() { # NAME CMD...: sets SECS RSS_KIB
  local name=$1; shift
  "$TIME_BIN" -f '%M %e' -o "$WORK/$name.time" "$@" >"$WORK/$name.out" 2>"$WORK/$name.err" \
    || { echo "error: $name failed:" >&2; cat "$WORK/$name.err" >&2; exit 1; }
  read -r RSS_KIB SECS < <(tail -n 1 "$WORK/$name.time")
}

LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
log "install 0.1.0 everywhere (not measured)"
timed install "$INSTALL" fleet rollout "$(fleet_file 5)" "$V0" --key "$KEY" --no-progress

ROWS=()
for pair in "1:$V1" "2:$V2" "5:$V5"; do
  P=${pair%%:*}; B=${pair#*:}
  before=$(requests)
  log "fleet rollout, maxParallel $P"
  timed "fleet-$P" "$INSTALL" fleet rollout "$(fleet_file "$P")" "$B" --key "$KEY" --no-progress
  grep -q "$N of $N clusters at" "$WORK/fleet-$P.out" || { cat "$WORK/fleet-$P.out" >&2; exit 1; }
  per=$(( ($(requests) - before) / N ))
  ROWS+=("| fleet rollout, maxParallel $P | $SECS | $per | $(awk -v k="$RSS_KIB" 'BEGIN{printf "%.1f", k/1024}') |")
done

log "$N sequential single-cluster upgrades"
before=$(requests); total=0; peak=0
for i in $(seq 1 "$N"); do
  timed "single-$i" "$INSTALL" upgrade "$VSINGLE" --key "$KEY" --kubeconfig "$WORK/kc$i.yaml" \
    --release shop --insecure-registry "$REGISTRY" --timeout 5m --no-progress
  total=$(awk -v a="$total" -v b="$SECS" 'BEGIN{print a+b}')
  (( RSS_KIB > peak )) && peak=$RSS_KIB
done
per=$(( ($(requests) - before) / N ))
ROWS+=("| $N × single-cluster \`upgrade\` | $total | $per | $(awk -v k="$peak" 'BEGIN{printf "%.1f", k/1024}') |")
LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)

echo "Fleet benchmark: $N test clusters (300 ms pod ready delay), one docker-registry, $PROFILE build"
echo "Load average at start: $LOAD_START; at end: $LOAD_END; $(nproc) cores"
echo
echo "| run | wall time (s) | apiserver requests per cluster | peak RSS (MiB) |"
echo "| --- | ---: | ---: | ---: |"
printf '%s\n' "${ROWS[@]}"
