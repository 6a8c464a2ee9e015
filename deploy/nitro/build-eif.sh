#!/usr/bin/env bash
# Build the enclave image and the EIF; print the PCRs to publish with the release.
#   deploy/nitro/build-eif.sh <version>
# Needs docker and nitro-cli (aws-nitro-enclaves-cli) on the build host.
set -euo pipefail
version="${1:?usage: build-eif.sh VERSION}"
cd "$(dirname "$0")/../.."
docker build -f deploy/nitro/Dockerfile.enclave -t "enclavia-enclave:${version}" .
mkdir -p build/nitro
nitro-cli build-enclave --docker-uri "enclavia-enclave:${version}" \
  --output-file "build/nitro/enclavia-${version}.eif" | tee "build/nitro/enclavia-${version}.measurements.json"
nitro-cli describe-eif --eif-path "build/nitro/enclavia-${version}.eif" > "build/nitro/enclavia-${version}.describe.json"
# PCR0 (image), PCR1 (kernel+bootstrap), PCR2 (application) go into the release record:
echo "next: enclavia release measure --build <build.json> --eif-json build/nitro/enclavia-${version}.describe.json"
