#!/usr/bin/env bash
# On the parent EC2 instance: start the enclave, the vsock relays, and the host relay in front of it.
#   deploy/nitro/run-parent.sh build/nitro/enclavia-<version>.eif https://kbs.internal
set -euo pipefail
eif="${1:?usage: run-parent.sh EIF BROKER_URL}"
broker="${2:?usage: run-parent.sh EIF BROKER_URL}"
cid="${ENCLAVE_CID:-16}"
state=/var/lib/enclavia
mkdir -p "$state"
# Production: never --debug-mode (PCR values change and the policy refuses debug enclaves anyway).
nitro-cli run-enclave --eif-path "$eif" --enclave-cid "$cid" --cpu-count "${CPUS:-2}" --memory "${MEMORY_MIB:-4096}"
relay="$(dirname "$0")/vsock_relay.py"
python3 "$relay" --listen "unix:$state/enclave.sock" --connect "vsock:$cid:5005" &
# The host services socket is created by `enclavia serve` at $state/host.sock; the enclave dials it over vsock.
python3 "$relay" --listen "vsock:ANY:5006" --connect "unix:$state/host.sock" &
exec enclavia serve --listen 0.0.0.0:8000 --state-dir "$state" --tee nitro \
  --enclave-socket "$state/enclave.sock" --broker "$broker"
