"""Pure attestation verification: evidence models, verifiers, appraisal. No I/O: time, roots and
collateral are inputs."""
