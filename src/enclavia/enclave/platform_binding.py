"""Start check on SEV-SNP and TDX: the platform's launch-time config slot carries this enclave's manifest.

The VMM chose HOST_DATA (SNP) or MRCONFIGID (TDX) when it launched the VM; the platform signs it in every
report. The enclave asks for its own first report before it serves anything or asks for a key, reads the
slot and compares it (constant time) with the digest of the manifest it has just built from what it loaded
(attestation.config_binding: SHA-256 / SHA-384 of the canonical manifest bytes). A host that launched the
measured image with other configuration gets a refusal at start (exit 78, PlatformBindingError), not an
enclave whose reports say something else than what it enforces.
"""

from __future__ import annotations

from enclavia.attestation.binding import compute_report_data
from enclavia.attestation.claims import Tee
from enclavia.attestation.config_binding import BOUND_TEES, check_slot
from enclavia.attestation.platforms.sevsnp.abi import parse_report
from enclavia.attestation.platforms.tdx.abi import parse_quote
from enclavia.enclave.core import Enclave

START_NONCE = bytes(32)  # the start report answers no client; it is never served


def own_slot(tee: Tee, evidence: bytes) -> bytes:
    """The config slot of the enclave's own report (parsed strictly; no signature check: the kernel's
    guest driver handed it to us)."""
    if tee is Tee.SEV_SNP:
        return parse_report(evidence).host_data
    return parse_quote(evidence).report.mr_config_id


def check_platform_binding(enclave: Enclave) -> None:
    """Raise PlatformBindingError (or EvidenceFormatError / AttesterError) unless the slot carries the
    manifest. A no-op on TEEs without such a slot (simulated, Nitro: their measurement covers the image)."""
    tee = enclave.attester.tee
    if tee not in BOUND_TEES:
        return
    report_data = compute_report_data(
        START_NONCE, enclave.key_config, enclave.signing_key.public_bytes, enclave.manifest_digest
    )
    evidence = enclave.attester.attest(report_data)
    check_slot(tee, own_slot(tee, evidence.evidence), enclave.manifest)
