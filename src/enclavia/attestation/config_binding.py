"""The platform-measured config slot carries the enclave manifest (issue 13, point 5).

The VMM sets one launch-time value that the platform then signs in every report, and the enclave cannot
change afterwards:

- SEV-SNP ``HOST_DATA`` (32 bytes, SNP_LAUNCH_FINISH) = SHA-256 of the canonical manifest bytes;
- TDX ``MRCONFIGID`` (48 bytes, TD creation) = SHA-384 of the canonical manifest bytes (that is
  ``ImageManifest.digest()``).

The canonical manifest bytes are ``ImageManifest.canonical()``: the manifest's JSON object with sorted keys,
no whitespace, ASCII only (``manifest.canonical_json``), the same bytes whose SHA-384 is bound into
report_data. Both sides use this module: the verifier (a reference entry with ``bind_manifest: true``) and
the enclave at start (its own first report), and both compare in constant time.
"""

from __future__ import annotations

import hashlib
import hmac

from enclavia.attestation.claims import Claims, Tee
from enclavia.attestation.manifest import ImageManifest
from enclavia.errors import PlatformBindingError

BOUND_TEES = (Tee.SEV_SNP, Tee.TDX)


def expected_slot(tee: Tee, canonical: bytes) -> bytes:
    """The value the config slot must hold for the manifest whose canonical bytes are ``canonical``."""
    if tee is Tee.SEV_SNP:
        return hashlib.sha256(canonical).digest()
    if tee is Tee.TDX:
        return hashlib.sha384(canonical).digest()
    raise ValueError("only SEV-SNP and TDX carry the manifest in a config slot")


def measured_slot(claims: Claims) -> bytes | None:
    """The config slot as the platform signed it (None: these claims do not have one)."""
    got = (
        claims.details.get("host_data")
        if claims.tee is Tee.SEV_SNP
        else claims.measurements.get("MRCONFIGID")
    )
    return got if isinstance(got, bytes) else None


def check_slot(tee: Tee, slot: bytes | None, manifest: ImageManifest) -> None:
    """Raise PlatformBindingError unless ``slot`` carries ``manifest``."""
    want = expected_slot(tee, manifest.canonical())
    if slot is None or not hmac.compare_digest(want, slot):
        raise PlatformBindingError()


def check_manifest_bound(claims: Claims, manifest: ImageManifest | None) -> None:
    """Verifier side: the presented manifest is the one the platform measured at launch."""
    if manifest is None or claims.tee not in BOUND_TEES:
        raise PlatformBindingError("no manifest to compare the platform config slot with")
    check_slot(claims.tee, measured_slot(claims), manifest)
