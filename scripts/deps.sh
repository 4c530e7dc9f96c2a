#!/usr/bin/env bash
# Installs the Debian packages Airlift's demo and tests use. Idempotent; quiet when all is present.
# skopeo and openssl check our output independently; docker-registry is the real OCI registry the tests
# run on loopback; time measures peak RSS in benchmarks; iproute2/util-linux make the air gap;
# man-db and groff render the generated man pages in their test; qemu-user runs the arm64 test
# image program in its test; g++ compiles libFuzzer for the fuzz step.
set -euo pipefail

need=()
for pair in skopeo:skopeo docker-registry:docker-registry openssl:openssl /usr/bin/time:time \
            ip:iproute2 unshare:util-linux man:man-db nroff:groff-base \
            qemu-aarch64:qemu-user g++:g++; do
  cmd=${pair%%:*}; pkg=${pair#*:}
  command -v "$cmd" >/dev/null 2>&1 || need+=("$pkg")
done

if [ ${#need[@]} -gt 0 ]; then
  echo "deps: installing ${need[*]}" >&2
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

command -v cargo >/dev/null 2>&1 || { echo "deps: cargo not found: install Rust first (https://rustup.rs)" >&2; exit 1; }
if ! command -v kubectl >/dev/null 2>&1; then
  echo "deps: kubectl is not installed; the kubectl protocol checks against the test cluster will fail." >&2
  echo "deps: install kubectl (e.g. the kubernetes-client package) to run them." >&2
fi
