#!/bin/sh
# A stand-in background worker: takes a job from the queue every few seconds.
set -eu
n=0
while true; do
  n=$((n + 1))
  echo "worker: queue=${DEMO_QUEUE:-jobs} concurrency=${DEMO_CONCURRENCY:-1} job=$n"
  sleep 5
done
