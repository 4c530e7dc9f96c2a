#!/usr/bin/env bash
# The main job end to end on the embedded default, on one machine:
#   vendor side:   airlift-pack packs bundles/demo with no network and signs it;
#   customer side: airlift-install verifies it, relocates its images into a registry and installs it
#                  into a cluster: a docker-registry on loopback and the project's test cluster
#                  (a loopback Kubernetes API server with a real kubeconfig).
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/deps.sh
echo "== building airlift-pack, airlift-install and the test cluster"
cargo build --locked --quiet -p airlift-pack -p airlift-install -p airlift-testkit
BIN=$PWD/target/debug

WORK=$(mktemp -d "${TMPDIR:-/tmp}/airlift-demo.XXXXXX")
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

# Offline proof: when this user may create a network namespace, the packager runs inside one
# that has no network at all.
OFFLINE=()
if unshare --net true 2>/dev/null; then OFFLINE=(unshare --net); fi

echo "== vendor: generate a signing key"
"$BIN/airlift-pack" keygen --out "$WORK/vendor"

echo "== vendor: pack bundles/demo ${OFFLINE:+(inside a network namespace with no network)}"
"${OFFLINE[@]}" "$BIN/airlift-pack" build bundles/demo --key "$WORK/vendor.key" \
  --out "$WORK/dist" --cache-dir "$WORK/cache"
BUNDLE=$(ls "$WORK"/dist/*.airlift)

echo "== customer: verify the signature and every digest"
"$BIN/airlift-install" verify "$BUNDLE" --key "$WORK/vendor.pub"
"$BIN/airlift-install" inspect "$BUNDLE" --key "$WORK/vendor.pub"

echo "== customer: start the registry and the cluster (embedded default)"
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
mkdir -p "$WORK/registry"
cat > "$WORK/registry.yml" <<YML
version: 0.1
storage:
  filesystem:
    rootdirectory: $WORK/registry
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$PORT
log:
  level: error
YML
docker-registry serve "$WORK/registry.yml" >"$WORK/registry.log" 2>&1 &
PIDS+=($!)
"$BIN/airlift-test-cluster" --kubeconfig-out "$WORK/kubeconfig" --nodes amd64,arm64 >"$WORK/cluster.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 1 100); do
  if [ -s "$WORK/kubeconfig" ] && (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then break; fi
  sleep 0.1
done

echo "== customer: install (verify, configure with the SaaS defaults, push, apply, wait, record)"
"$BIN/airlift-install" install "$BUNDLE" --key "$WORK/vendor.pub" \
  --registry "127.0.0.1:$PORT/demo" --insecure-registry "127.0.0.1:$PORT" \
  --kubeconfig "$WORK/kubeconfig" --yes

echo "== customer: the release"
"$BIN/airlift-install" status demo --kubeconfig "$WORK/kubeconfig"
if command -v kubectl >/dev/null 2>&1; then
  kubectl --kubeconfig "$WORK/kubeconfig" get deployments,services,configmaps -n demo
fi
echo "== done: bundles/demo was packed offline, verified and installed"
