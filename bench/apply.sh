#!/usr/bin/env bash
# Apply benchmark (issue 12): a bundle of 500 objects (ConfigMaps, Secrets, Services and
# Deployments across 10 namespaces) installed by `airlift-install install` against the same
# rendered objects applied with `kubectl apply --server-side`, each on a fresh test cluster
# (`airlift-test-cluster`, release build, Pods ready at once), alternating, APPLY_RUNS times.
#
# Usage: bench/apply.sh            Env: APPLY_RUNS (default 3), BENCH_NO_CARGO=1, BENCH_KEEP=1
# Prints one line per run and the medians. Not part of the test suite; nothing is asserted.
#
# What is timed: for Airlift the whole `install` (verify with its recorded proof, a push that
# finds every blob in the registry, preflight, apply, wait, record) and, from its progress lines
# (timestamped as they arrive by bench/stamp.py), its apply phase: from "checking N objects"
# (every object read and dry-run applied, ownership checked) to the last "applied ... (N/N)";
# for kubectl one `apply --server-side -R -f` of the folder `airlift-install render` wrote for
# the same release (one file per object, in apply order), whole, and from its first printed
# object to its last (its apply loop without start-up, discovery and file reading).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN="$ROOT/target/release"
RUNS=${APPLY_RUNS:-3}
NS=10
PER_NS=10   # of each kind: ConfigMaps x2, Secrets, Services, Deployments -> 50 objects per namespace

for tool in /usr/bin/docker-registry /usr/bin/time kubectl curl; do
  command -v "$tool" >/dev/null || { echo "error: $tool is missing" >&2; exit 1; }
done
if [[ "${BENCH_NO_CARGO:-0}" != 1 ]]; then
  (cd "$ROOT" && cargo build --release -p airlift-pack -p airlift-install -p airlift-testkit) >&2
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/airlift-apply.XXXXXX")
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [[ "${BENCH_KEEP:-0}" == 1 ]]; then echo "kept $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
export XDG_CACHE_HOME="$WORK/xdg-cache" XDG_STATE_HOME="$WORK/xdg-state" AIRLIFT_STATE_DIR="$WORK/state"

# --- the definition: the demo's web image, 500 objects -------------------------------------
DEF="$WORK/def"
mkdir -p "$DEF/manifests/objects" "$DEF/images"
cp -r "$ROOT/bundles/demo/images/web" "$DEF/images/web"
cat >"$DEF/airlift.yaml" <<'EOF'
apiVersion: airlift.dev/v1alpha1
kind: BundleDefinition
metadata:
  name: applybench
  version: 1.0.0
  channel: stable
  vendor: Airlift Bench
requirements:
  kubernetes: ">=1.28.0"
  platforms: [linux/amd64]
components:
  - name: app
    description: 500 objects across 10 namespaces.
    mode: required
    layer: workload
    manifests: [manifests/objects]
    images:
      - reference: registry.example.com/bench/web:1.0
        source:
          build:
            context: images/web
            entrypoint: ["/bin/sh", "/app/server.sh"]
            workdir: /app
EOF
for n in $(seq 0 $((NS - 1))); do
  f="$DEF/manifests/objects/ns-$n.yaml"
  printf 'apiVersion: v1\nkind: Namespace\nmetadata:\n  name: bench-%s\n' "$n" >"$f"
  for i in $(seq 0 $((PER_NS - 1))); do
    for kind in a b; do
      printf -- '---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm-%s-%s\n  namespace: bench-%s\ndata:\n  key: "value %s %s"\n' \
        "$kind" "$i" "$n" "$n" "$i" >>"$f"
    done
    printf -- '---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: secret-%s\n  namespace: bench-%s\nstringData:\n  token: "t-%s-%s"\n' \
      "$i" "$n" "$n" "$i" >>"$f"
    printf -- '---\napiVersion: v1\nkind: Service\nmetadata:\n  name: svc-%s\n  namespace: bench-%s\nspec:\n  selector: {app: web-%s}\n  ports: [{port: 80, targetPort: 8080}]\n' \
      "$i" "$n" "$i" >>"$f"
    printf -- '---\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web-%s\n  namespace: bench-%s\nspec:\n  replicas: 1\n  selector:\n    matchLabels: {app: web-%s}\n  template:\n    metadata:\n      labels: {app: web-%s}\n    spec:\n      containers:\n        - name: web\n          image: registry.example.com/bench/web:1.0\n' \
      "$i" "$n" "$i" "$i" >>"$f"
  done
done

"$BIN/airlift-pack" keygen --out "$WORK/vendor" >/dev/null
"$BIN/airlift-pack" --no-progress build "$DEF" --key "$WORK/vendor.key" --out "$WORK/dist" \
  --cache-dir "$WORK/cache" >/dev/null
BUNDLE=$(ls "$WORK"/dist/*.airlift)

# --- registry, pushed once, and the rendered folder -----------------------------------------
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
mkdir -p "$WORK/registry"
cat >"$WORK/registry.yml" <<EOF
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $WORK/registry
http:
  addr: 127.0.0.1:$PORT
EOF
docker-registry serve "$WORK/registry.yml" >"$WORK/registry.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 1 100); do curl -fsS -o /dev/null "http://127.0.0.1:$PORT/v2/" 2>/dev/null && break; sleep 0.1; done
REG="127.0.0.1:$PORT"
"$BIN/airlift-install" --no-progress push "$BUNDLE" --key "$WORK/vendor.pub" --registry "$REG/bench" \
  --insecure-registry "$REG" >/dev/null
"$BIN/airlift-install" render "$BUNDLE" --key "$WORK/vendor.pub" --registry "$REG/bench" \
  --out "$WORK/rendered" >/dev/null
OBJECTS=$(find "$WORK/rendered" -type f | wc -l)

# start_cluster NAME: a fresh test cluster; sets KC (its kubeconfig) and CPID.
start_cluster() {
  KC="$WORK/kc-$1"
  "$BIN/airlift-test-cluster" --kubeconfig-out "$KC" --ready-delay-ms 0 >"$WORK/cluster-$1.log" 2>&1 &
  CPID=$!
  PIDS+=("$CPID")
  for _ in $(seq 1 100); do [[ -s "$KC" ]] && break; sleep 0.05; done
}
# Each cluster is stopped after its run: an idle one still reconciles its Pods.
stop_cluster() { kill "$CPID" 2>/dev/null || true; wait "$CPID" 2>/dev/null || true; }
secs() { /usr/bin/time -f '%e %M' -o "$WORK/time" "$@" >"$WORK/out" 2>&1 || { cat "$WORK/out" >&2; exit 1; }; cat "$WORK/time"; }
# Objects the cluster holds in the bench namespaces (checks that each tool applied them all).
count() { kubectl --kubeconfig "$KC" get configmaps,secrets,services,deployments -A --no-headers 2>/dev/null | grep -c '^bench-' || true; }

echo "apply benchmark: $OBJECTS rendered objects (10 of them Namespaces), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
# stamped FILE CMD...: runs CMD under /usr/bin/time with every output line timestamped into FILE;
# prints "SECONDS PEAK_KIB".
stamped() {
  local file=$1; shift
  python3 "$ROOT/bench/stamp.py" "$file" /usr/bin/time -f '%e %M' -o "$WORK/time" "$@" \
    || { cat "$file" >&2; exit 1; }
  cat "$WORK/time"
}
# span FILE FIRST_RE LAST_RE: seconds from the first line matching FIRST_RE to the last line
# matching LAST_RE.
span() {
  awk -v a="$2" -v b="$3" '$0 ~ a && s == "" {s = $1} $0 ~ b {e = $1} END {if (s == "" || e == "") print "?"; else printf "%.2f\n", e - s}' "$1"
}
declare -a A K AP KP
for r in $(seq 1 "$RUNS"); do
  start_cluster "k$r"
  read -r s rss < <(stamped "$WORK/k$r.lines" kubectl --kubeconfig "$KC" apply --server-side -R -f "$WORK/rendered")
  kp=$(span "$WORK/k$r.lines" ' serverside-applied$' ' serverside-applied$')
  K+=("$s"); KP+=("$kp")
  echo "run $r: kubectl apply --server-side  ${s} s, first to last object ${kp} s  (peak RSS $((rss / 1024)) MiB, $(count) objects in the cluster)"
  stop_cluster
  start_cluster "a$r"
  read -r s rss < <(stamped "$WORK/a$r.lines" "$BIN/airlift-install" install "$BUNDLE" --key "$WORK/vendor.pub" \
    --registry "$REG/bench" --insecure-registry "$REG" --kubeconfig "$KC" --yes)
  ap=$(span "$WORK/a$r.lines" '^[0-9.]+ install: checking [0-9]+ objects' '^[0-9.]+ applied .*\([0-9]+/[0-9]+\)$')
  A+=("$s"); AP+=("$ap")
  echo "run $r: airlift-install install      ${s} s, apply phase ${ap} s  (peak RSS $((rss / 1024)) MiB, $(count) objects in the cluster)"
  stop_cluster
done
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
echo "median: kubectl $(median "${K[@]}") s (first to last object $(median "${KP[@]}") s), airlift-install install $(median "${A[@]}") s (apply phase $(median "${AP[@]}") s); load $(cut -d' ' -f1-3 /proc/loadavg)"
