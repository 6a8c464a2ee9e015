#!/bin/sh
# Inside the Nitro enclave: bring up loopback, bridge vsock <-> Unix sockets, run the measured enclave.
set -eu
ip link set lo up 2>/dev/null || true
ENCLAVE_PORT="${ENCLAVE_PORT:-5005}"   # parent -> enclave frames
SERVICES_PORT="${SERVICES_PORT:-5006}" # enclave -> parent services (blob store, egress)
PARENT_CID=3
mkdir -p /run/enclavia
python3 /opt/enclavia/vsock_relay.py --listen "vsock:ANY:${ENCLAVE_PORT}" --connect unix:/run/enclavia/enclave.sock &
python3 /opt/enclavia/vsock_relay.py --listen unix:/run/enclavia/host.sock --connect "vsock:${PARENT_CID}:${SERVICES_PORT}" &
# Isolated interpreter, empty environment: the flags and the allow-list are measured (enclavia.launch).
exec env -i "$(command -v python3)" -I -B -m enclavia.enclave.main \
  --socket /run/enclavia/enclave.sock \
  --store-socket /run/enclavia/host.sock \
  --model-dir /opt/enclavia/models \
  --sim-dir /run/enclavia/unused \
  --tee nitro
