"""One exception tree for enclavia.

Every failure that crosses a trust boundary is one of these. Each class has a stable ``code``
(what clients, logs and metrics see) and an HTTP ``status`` used when it is turned into RFC 9457
problem+json. Messages are fixed, content-free strings: never put request data, keys, tokens or
evidence bytes into an exception's arguments.

::

    EnclaviaError
    ├── CryptoError
    │   ├── MalformedMessageError          bytes that do not parse as OHTTP / BHTTP / key config
    │   ├── UnknownKeyIdError              request sealed to a key id the enclave does not hold
    │   ├── UnsupportedSuiteError          KEM/KDF/AEAD not in the measured configuration (no downgrade)
    │   ├── DecryptionError                AEAD open failed (bit flip, wrong key, wrong AAD)
    │   │   └── ChunkIntegrityError        stream chunk missing, reordered or modified (chunked OHTTP)
    │   ├── StreamTruncatedError           chunked stream ended before its authenticated final chunk
    │   └── InvalidPublicKeyError          low-order or malformed public key
    ├── AttestationError
    │   ├── EvidenceFormatError            evidence does not parse (lengths, versions, CBOR)
    │   ├── SignatureInvalidError          evidence signature does not verify
    │   ├── CertificateChainError          chain does not reach a pinned root
    │   │   ├── CertificateExpiredError
    │   │   ├── CertificateNotYetValidError
    │   │   ├── CertificateRevokedError
    │   │   └── UntrustedRootError
    │   ├── NonceMismatchError             evidence is not for the nonce we sent
    │   ├── ReplayedNonceError             nonce seen before / unknown / expired
    │   ├── ReportDataMismatchError        report_data does not bind what was presented
    │   ├── ManifestMismatchError          manifest presented is not the one measured
    │   │   └── PlatformBindingError       SNP host_data / TDX MRCONFIGID does not carry the manifest
    │   ├── EvidenceTooOldError
    │   ├── TcbError                       TCB below floor or status not accepted
    │   ├── DebugEnclaveError              debug mode evidence
    │   ├── ChipMismatchError              endorsement key is for another chip
    │   ├── CollateralError                collateral missing, expired or not matching
    │   ├── RevocationUnknownError         revocation could not be checked and policy demands it
    │   ├── AttesterError                  the TEE device could not produce evidence (or a writer raced)
    │   └── ReceiptInvalidError            response receipt malformed or not matching request/response
    ├── PolicyError
    │   ├── PolicyLoadError                policy file invalid (incl. allow-list entries that pin nothing)
    │   ├── MeasurementNotAllowedError
    │   ├── DevProfileRequiredError        simulated TEE under a non-dev policy
    │   ├── PolicyConditionFailedError     a CEL condition evaluated false
    │   ├── ClassificationManifestError    data classification manifest invalid (refused at enclave start)
    │   └── PolicyRevisionConflictError    compare-and-set on revision lost
    ├── EnclaveError
    │   ├── BadRequestError                inner request invalid (feature names, NaN, content type)
    │   │   └── UnsupportedMediaTypeError  body content type not the one the route takes: 415
    │   ├── NotFoundError                  unknown route or model
    │   ├── PayloadTooLargeError
    │   ├── SecretsUnavailableError        keys not (yet) released: 503
    │   │   └── SecretVersionRollbackError a released KEK older than the current or a held one: refused
    │   ├── EnclaveUnavailableError        enclave process not reachable: 503
    │   ├── UnauthenticatedError           inner request without a known requester credential: 401
    │   ├── ForbiddenError                 requester may not do this (tenant, clearance, class action)
    │   │   └── NotLocalError              local proxy: Host not loopback or a cross-origin browser request
    │   ├── EgressDeniedError              destination not on the measured egress allow-list
    │   ├── EgressFailedError              allowed provider unreachable or answered badly: 502
    │   ├── StorageUnavailableError        host blob store unreachable or refused: 503
    │   ├── InternalError                  unexpected failure inside the enclave (a bug): code only, 500
    │   ├── ModelTooLargeError             models need more memory than the enclave's limit (refused at start)
    │   ├── UncleanProcessError            started without the fixed interpreter flags / environment (refused)
    │   ├── UnmeasuredCodeError            a loaded module is outside the manifest (refused at start)
    │   ├── MeasuredInputChangedError      a model or input differs from what was measured (refused at start)
    │   └── MemoryExhaustedError           an allocation failed under the memory limit during a request: 503
    ├── BrokerError
    │   ├── TokenInvalidError              attestation token bad, forged, wrong audience or alg
    │   │   ├── TokenExpiredError          past its exp
    │   │   └── TokenStaleError            policy revision changed since it was issued: re-attest
    │   ├── SecretNotFoundError
    │   ├── SecretExistsError              create of a path that already exists (rotate instead)
    │   ├── AdminUnauthorizedError         admin API token missing or wrong
    │   ├── SecretPathInvalidError         traversal, bad characters
    │   ├── ReleaseDeniedError             policy refused this secret to this enclave
    │   ├── BrokerRateLimitedError         too many challenges / failed admin logins from one source: 429
    │   └── StoreUnavailableError          database or key store down: 503
    │       └── StoreTamperedError         a stored record fails its signature or key-store AAD check
    │           ├── PolicyChainBrokenError policy revision unsigned, edited, out of chain or rolled back
    │           └── LedgerBehindWitnessError the ledger no longer reaches a checkpoint published outside
    ├── AuditError
    │   ├── AuditWriteError                append failed: the action it records fails too
    │   └── AuditVerificationError         chain broken: edited, deleted or reordered records
    │       └── LedgerBehindCheckpointError an external checkpoint is beyond or off the ledger (truncation)
    ├── TransparencyLogError
    │   ├── InclusionProofError            leaf not in the tree the signed head commits to
    │   ├── ConsistencyProofError          new head does not extend the last one seen (fork, rollback)
    │   ├── TreeHeadInvalidError           signed tree head malformed or its signature does not verify
    │   ├── LogEntryNotFoundError          no release record for this manifest digest in the log
    │   └── LogAppendError                 append refused (not a verified release, duplicate, bad token)
    ├── ReleaseError
    │   ├── ReleaseRecordInvalidError      record malformed, or its content does not match the build
    │   ├── ReleaseSignatureError          release key or approver signature does not verify
    │   ├── ApprovalQuorumError            fewer than k of the named approvers signed
    │   └── RolloutStateError              rollout step not allowed from the current state
    └── TransportError                     client could not reach host / relay
"""

from __future__ import annotations

from typing import ClassVar


class EnclaviaError(Exception):
    """Root of the tree. ``code`` is stable and safe to show; the message is fixed text."""

    code: ClassVar[str] = "enclavia.error"
    status: ClassVar[int] = 500
    title: ClassVar[str] = "Internal error"

    def __init__(self, detail: str | None = None) -> None:
        # detail must be a fixed, content-free phrase chosen by the raiser.
        self.detail = detail or self.title
        super().__init__(self.detail)


# --- crypto -------------------------------------------------------------------------------------


class CryptoError(EnclaviaError):
    code = "crypto.error"
    status = 400
    title = "Cryptographic failure"


class MalformedMessageError(CryptoError):
    code = "crypto.malformed"
    title = "Malformed encapsulated message"


class UnknownKeyIdError(CryptoError):
    code = "crypto.unknown_key_id"
    status = 422
    title = "Request sealed to a key this enclave does not hold; re-attest"


class UnsupportedSuiteError(CryptoError):
    code = "crypto.unsupported_suite"
    title = "HPKE suite not in the measured configuration"


class DecryptionError(CryptoError):
    code = "crypto.decrypt_failed"
    title = "Decryption failed"


class InvalidPublicKeyError(CryptoError):
    code = "crypto.invalid_public_key"
    title = "Invalid public key"


class ChunkIntegrityError(DecryptionError):
    code = "crypto.chunk_integrity"
    title = "Stream chunk missing, reordered or modified"


class StreamTruncatedError(CryptoError):
    code = "crypto.stream_truncated"
    status = 502
    title = "Encrypted stream ended before its final chunk"


# --- attestation --------------------------------------------------------------------------------


class AttestationError(EnclaviaError):
    code = "attestation.error"
    status = 403
    title = "Attestation failed"


class EvidenceFormatError(AttestationError):
    code = "attestation.malformed_evidence"
    title = "Evidence does not parse"


class SignatureInvalidError(AttestationError):
    code = "attestation.bad_signature"
    title = "Evidence signature does not verify"


class CertificateChainError(AttestationError):
    code = "attestation.bad_chain"
    title = "Certificate chain does not verify"


class CertificateExpiredError(CertificateChainError):
    code = "attestation.cert_expired"
    title = "A certificate in the chain has expired"


class CertificateNotYetValidError(CertificateChainError):
    code = "attestation.cert_not_yet_valid"
    title = "A certificate in the chain is not yet valid"


class CertificateRevokedError(CertificateChainError):
    code = "attestation.cert_revoked"
    title = "A certificate in the chain is revoked"


class UntrustedRootError(CertificateChainError):
    code = "attestation.untrusted_root"
    title = "Chain does not end at a pinned root"


class NonceMismatchError(AttestationError):
    code = "attestation.nonce_mismatch"
    title = "Evidence is not for this nonce"


class ReplayedNonceError(AttestationError):
    code = "attestation.replayed_nonce"
    title = "Nonce unknown, expired or already used"


class ReportDataMismatchError(AttestationError):
    code = "attestation.report_data_mismatch"
    title = "report_data does not bind the presented key configuration"


class ManifestMismatchError(AttestationError):
    code = "attestation.manifest_mismatch"
    title = "Manifest presented is not the one measured"


class PlatformBindingError(ManifestMismatchError):
    code = "attestation.manifest_not_bound"
    title = "Platform-measured config slot does not carry the manifest"


class EvidenceTooOldError(AttestationError):
    code = "attestation.evidence_too_old"
    title = "Evidence is older than the policy allows"


class TcbError(AttestationError):
    code = "attestation.tcb"
    title = "TCB below the floor or status not accepted"


class DebugEnclaveError(AttestationError):
    code = "attestation.debug"
    title = "Evidence from a debug enclave"


class ChipMismatchError(AttestationError):
    code = "attestation.chip_mismatch"
    title = "Endorsement key belongs to another chip"


class CollateralError(AttestationError):
    code = "attestation.collateral"
    title = "Collateral missing, expired or not matching"


class RevocationUnknownError(AttestationError):
    code = "attestation.revocation_unknown"
    title = "Revocation status unknown and policy requires it"


class AttesterError(AttestationError):
    code = "attestation.attester_failed"
    status = 503
    title = "The TEE could not produce evidence"


class ReceiptInvalidError(AttestationError):
    code = "attestation.receipt_invalid"
    title = "Receipt malformed or not matching the request and response"


# --- policy -------------------------------------------------------------------------------------


class PolicyError(EnclaviaError):
    code = "policy.error"
    status = 403
    title = "Policy refused"


class PolicyLoadError(PolicyError):
    code = "policy.invalid"
    status = 400
    title = "Policy document invalid"


class MeasurementNotAllowedError(PolicyError):
    code = "policy.measurement_not_allowed"
    title = "Measurement not on the allow-list"


class DevProfileRequiredError(PolicyError):
    code = "policy.simulated_requires_dev"
    title = "Simulated TEE accepted only under profile: dev"


class PolicyConditionFailedError(PolicyError):
    code = "policy.condition_failed"
    title = "Policy condition not met"


class ClassificationManifestError(PolicyLoadError):
    code = "policy.classification_invalid"
    title = "Data classification manifest invalid"


class PolicyRevisionConflictError(PolicyError):
    code = "policy.revision_conflict"
    status = 409
    title = "Policy revision changed concurrently"


# --- enclave app --------------------------------------------------------------------------------


class EnclaveError(EnclaviaError):
    code = "enclave.error"
    status = 500
    title = "Enclave error"


class BadRequestError(EnclaveError):
    code = "request.invalid"
    status = 400
    title = "Invalid request"


class UnsupportedMediaTypeError(BadRequestError):
    """One class for host and enclave: the code must name one thing (test_architecture)."""

    code = "request.unsupported_media_type"
    status = 415
    title = "Unsupported content type"


class NotFoundError(EnclaveError):
    code = "request.not_found"
    status = 404
    title = "Not found"


class PayloadTooLargeError(EnclaveError):
    code = "request.too_large"
    status = 413
    title = "Payload too large"


class SecretsUnavailableError(EnclaveError):
    code = "enclave.secrets_unavailable"
    status = 503
    title = "Keys for this route have not been released"


class InternalError(EnclaveError):
    """Anything unexpected, turned into one typed error at the top-level handler; its text is dropped."""

    code = "enclave.internal"
    status = 500
    title = "Internal error"


class SecretVersionRollbackError(SecretsUnavailableError):
    code = "enclave.secret_version_rollback"
    title = "Released key is older than the current version"


class EnclaveUnavailableError(EnclaveError):
    code = "enclave.unavailable"
    status = 503
    title = "Enclave unavailable"


class UnauthenticatedError(EnclaveError):
    code = "request.unauthenticated"
    status = 401
    title = "Requester credential missing or unknown"


class ForbiddenError(EnclaveError):
    code = "request.forbidden"
    status = 403
    title = "Not allowed for this requester"


class NotLocalError(ForbiddenError):
    code = "proxy.not_local"
    status = 403
    title = "The local proxy serves only local software"


class EgressDeniedError(EnclaveError):
    code = "egress.denied"
    status = 403
    title = "Destination not on the egress allow-list"


class EgressFailedError(EnclaveError):
    code = "egress.failed"
    status = 502
    title = "External provider unreachable or reply invalid"


class StorageUnavailableError(EnclaveError):
    code = "enclave.storage_unavailable"
    status = 503
    title = "Document store unavailable"


class ModelTooLargeError(EnclaveError):
    """Raised at enclave start, before any model is loaded: the estimated need exceeds the memory limit.

    ``need`` and ``limit`` are byte counts from the operator's configuration and artifact sizes (no request
    data); the detail names both in MiB.
    """

    code = "enclave.model_too_large"
    status = 507
    title = "Models do not fit in the enclave's memory limit"

    def __init__(self, need: int = 0, limit: int = 0) -> None:
        self.need, self.limit = need, limit
        mib = 1 << 20
        super().__init__(
            f"needs about {-(-need // mib)} MiB, enclave memory limit is {limit // mib} MiB" if need else None
        )


class UncleanProcessError(EnclaveError):
    """Raised at enclave start: not isolated mode, or an environment variable outside the allow-list
    (enclavia.launch). The detail names fixed categories only, never a variable's value."""

    code = "enclave.unclean_process"
    status = 500
    title = "Enclave process not started with its measured interpreter settings"


class UnmeasuredCodeError(EnclaveError):
    """Raised after boot, before the enclave serves or asks for a key: a module it has loaded is not covered
    by its manifest (not an enclavia file in the measured import closure, nor a measured package file)."""

    code = "enclave.unmeasured_code"
    status = 500
    title = "Enclave loaded code outside its measurement"


class MeasuredInputChangedError(EnclaveError):
    """Raised at enclave start: what was loaded differs from what was measured (a file swapped between the
    measuring read and the load, or a model that does not match its pin)."""

    code = "enclave.measured_input_changed"
    status = 500
    title = "Enclave input changed between measurement and use"


class MemoryExhaustedError(EnclaveError):
    code = "enclave.memory_exhausted"
    status = 503
    title = "Enclave memory limit reached while serving this request"


# --- broker -------------------------------------------------------------------------------------


class BrokerError(EnclaviaError):
    code = "broker.error"
    status = 403
    title = "Key broker refused"


class TokenInvalidError(BrokerError):
    code = "broker.token_invalid"
    status = 401
    title = "Attestation token invalid or expired"


class TokenExpiredError(TokenInvalidError):
    code = "broker.token_expired"
    title = "Attestation token expired"


class TokenStaleError(TokenInvalidError):
    code = "broker.token_stale"
    title = "Policy revision changed since the token was issued; re-attest"


class SecretExistsError(BrokerError):
    code = "broker.secret_exists"
    status = 409
    title = "Secret already exists"


class AdminUnauthorizedError(BrokerError):
    code = "broker.admin_unauthorized"
    status = 401
    title = "Admin token missing or invalid"


class SecretNotFoundError(BrokerError):
    code = "broker.secret_not_found"
    status = 404
    title = "Secret not found"


class SecretPathInvalidError(BrokerError):
    code = "broker.secret_path_invalid"
    status = 400
    title = "Secret path invalid"


class ReleaseDeniedError(BrokerError):
    code = "broker.release_denied"
    title = "Release denied by policy"


class BrokerRateLimitedError(BrokerError):
    code = "broker.rate_limited"
    status = 429
    title = "Too many requests from this source"


class StoreUnavailableError(BrokerError):
    code = "broker.store_unavailable"
    status = 503
    title = "Store unavailable"


class StoreTamperedError(StoreUnavailableError):
    code = "broker.store_tampered"
    title = "Stored record failed its integrity check"


class PolicyChainBrokenError(StoreTamperedError):
    code = "broker.policy_chain_broken"
    title = "Policy signature chain broken"


class LedgerBehindWitnessError(StoreTamperedError):
    code = "broker.ledger_behind_witness"
    title = "Audit ledger is behind a published checkpoint"


# --- audit and transparency ---------------------------------------------------------------------


class AuditError(EnclaviaError):
    code = "audit.error"
    status = 503
    title = "Audit failure"


class AuditWriteError(AuditError):
    code = "audit.write_failed"
    title = "Audit append failed"


class AuditVerificationError(AuditError):
    code = "audit.verification_failed"
    title = "Audit ledger does not verify"


class LedgerBehindCheckpointError(AuditVerificationError):
    code = "audit.behind_checkpoint"
    title = "Audit ledger does not reach an external checkpoint"


class TransparencyLogError(EnclaviaError):
    code = "tlog.error"
    status = 403
    title = "Transparency log check failed"


class InclusionProofError(TransparencyLogError):
    code = "tlog.inclusion"
    title = "Inclusion proof does not verify"


class ConsistencyProofError(TransparencyLogError):
    code = "tlog.consistency"
    title = "Consistency proof does not verify"


class TreeHeadInvalidError(TransparencyLogError):
    code = "tlog.tree_head_invalid"
    title = "Signed tree head malformed or signature invalid"


class LogEntryNotFoundError(TransparencyLogError):
    code = "tlog.not_included"
    title = "No release record for this measurement in the transparency log"


class LogAppendError(TransparencyLogError):
    code = "tlog.append_refused"
    status = 400
    title = "Transparency log append refused"


# --- release ------------------------------------------------------------------------------------


class ReleaseError(EnclaviaError):
    code = "release.error"
    status = 400
    title = "Release check failed"


class ReleaseRecordInvalidError(ReleaseError):
    code = "release.record_invalid"
    title = "Release record malformed or not matching"


class ReleaseSignatureError(ReleaseError):
    code = "release.bad_signature"
    status = 403
    title = "Release signature does not verify"


class ApprovalQuorumError(ReleaseError):
    code = "release.approvals_missing"
    status = 403
    title = "Not enough approvals for this release"


class RolloutStateError(ReleaseError):
    code = "release.rollout_state"
    status = 409
    title = "Rollout step not allowed from the current state"


# --- transport ----------------------------------------------------------------------------------


class TransportError(EnclaviaError):
    code = "transport.error"
    status = 502
    title = "Could not reach the service"


def all_error_classes() -> list[type[EnclaviaError]]:
    """Every class in the tree (used to check codes are unique and to map codes back to classes)."""
    out: list[type[EnclaviaError]] = []
    stack: list[type[EnclaviaError]] = [EnclaviaError]
    while stack:
        cls = stack.pop()
        out.append(cls)
        stack.extend(cls.__subclasses__())
    return out


def error_for_code(code: str) -> type[EnclaviaError]:
    for cls in all_error_classes():
        if cls.code == code:
            return cls
    return EnclaviaError
