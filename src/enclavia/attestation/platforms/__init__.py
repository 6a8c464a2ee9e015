"""Per-platform verifiers. Each package has abi (parse), verify (numbered checks), appraise (policy)."""

from enclavia.attestation.platforms.nitro import appraise as _nitro  # noqa: F401
from enclavia.attestation.platforms.nvidia import appraise as _nvidia  # noqa: F401
from enclavia.attestation.platforms.sevsnp import appraise as _sevsnp  # noqa: F401
from enclavia.attestation.platforms.simulated import appraise as _simulated  # noqa: F401
from enclavia.attestation.platforms.tdx import appraise as _tdx  # noqa: F401
