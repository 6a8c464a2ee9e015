"""AWS Nitro attestation document wire format.

document    = COSE_Sign1, tagged (CBOR tag 18) or untagged:
              [protected: bstr .cbor {1: -35}, unprotected: {}, payload: bstr .cbor AttestationDoc,
               signature: bstr .size 96]                                   (RFC 9052, ES384 per RFC 9053)
AttestationDoc (aws-nitro-enclaves-nsm-api, docs/attestation_process.md):
  {"module_id": tstr (non-empty), "digest": "SHA384", "timestamp": uint (ms since epoch, > 0),
   "pcrs": {0..31 => bstr .size 48} (1..32 entries), "certificate": bstr (1..1024),
   "cabundle": [+ bstr (1..1024)], ? "public_key": bstr (1..1024) / nil, ? "user_data": bstr (0..1024) / nil,
   ? "nonce": bstr (0..1024) / nil}

AWS's document gives user_data and nonce as 0..1024 in its CDDL and 0..512 in its validation prose; real NSM
documents carry more than 512 bytes of user_data (see the cape-js vectors), so the CDDL limit is enforced. The
prose also says no field may be null, yet the NSM emits ``user_data: null`` when none was requested: optional
fields may be null and then count as absent.

Before cbor2 sees any bytes, a small well-formedness walk enforces: definite lengths only, declared lengths
within the input, nesting depth <= 8, no floats, undefined or tags (except the outer tag 18), no duplicate map
keys, and no bytes after the item. Anything else is an EvidenceFormatError.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import cbor2

from enclavia.errors import EvidenceFormatError

MAX_DOCUMENT_LEN = 20 * 1024  # payload is at most 16 KiB (AWS), plus certificates and framing
MAX_DEPTH = 8
MAX_PAYLOAD_LEN = 16 * 1024
COSE_SIGN1_TAG = 18
COSE_ALG_LABEL = 1
COSE_ALG_ES384 = -35
SIGNATURE_LEN = 96
PCR_LEN = 48
MAX_PCRS = 32
MAX_CERT_LEN = 1024
MAX_CABUNDLE = 16
MAX_PUBLIC_KEY_LEN = 1024
MAX_USER_DATA_LEN = 1024
MAX_NONCE_LEN = 1024
DIGEST = "SHA384"
_REQUIRED = frozenset({"module_id", "digest", "timestamp", "pcrs", "certificate", "cabundle"})
_OPTIONAL = frozenset({"public_key", "user_data", "nonce"})


# --- CBOR well-formedness guard -------------------------------------------------------------------------


def _head(data: bytes, pos: int) -> tuple[int, int, int]:
    """Decode one CBOR initial byte and argument: (major type, argument, position after the head)."""
    if pos >= len(data):
        raise EvidenceFormatError("CBOR truncated")
    ib = data[pos]
    major, info = ib >> 5, ib & 0x1F
    pos += 1
    if info < 24:
        return major, info, pos
    if info > 27:
        raise EvidenceFormatError("CBOR indefinite length or reserved value")
    n = 1 << (info - 24)
    if pos + n > len(data):
        raise EvidenceFormatError("CBOR truncated")
    return major, int.from_bytes(data[pos : pos + n], "big"), pos + n


def _walk(data: bytes, pos: int, depth: int) -> int:
    """Check one data item starting at ``pos``; return the position just after it."""
    if depth > MAX_DEPTH:
        raise EvidenceFormatError("CBOR nested too deeply")
    start = pos
    major, arg, pos = _head(data, pos)
    remaining = len(data) - pos
    if major in (0, 1):
        return pos
    if major in (2, 3):
        if arg > remaining:
            raise EvidenceFormatError("CBOR length exceeds input")
        return pos + arg
    if major == 4:
        if arg > remaining:
            raise EvidenceFormatError("CBOR array count exceeds input")
        for _ in range(arg):
            pos = _walk(data, pos, depth + 1)
        return pos
    if major == 5:
        if 2 * arg > remaining:
            raise EvidenceFormatError("CBOR map count exceeds input")
        seen: set[bytes] = set()
        for _ in range(arg):
            start = pos
            pos = _walk(data, pos, depth + 1)
            key = data[start:pos]
            if key in seen:
                raise EvidenceFormatError("CBOR map has a duplicate key")
            seen.add(key)
            pos = _walk(data, pos, depth + 1)
        return pos
    if major == 6:
        raise EvidenceFormatError("CBOR tag not allowed here")
    # major 7: only false, true, null (one-byte forms; f8 xx simple values and floats are refused).
    if data[start] not in (0xF4, 0xF5, 0xF6):
        raise EvidenceFormatError("CBOR simple value or float not allowed")
    return pos


def loads_strict(data: bytes, *, allow_tag: int | None = None) -> Any:
    """Decode exactly one well-formed CBOR item (see module docstring); optionally one outer tag."""
    if not isinstance(data, bytes):
        raise TypeError("CBOR input must be bytes")
    pos = 0
    if allow_tag is not None and data[:1] and data[0] >> 5 == 6:
        _major, tag, pos = _head(data, 0)
        if tag != allow_tag:
            raise EvidenceFormatError("CBOR tag not allowed")
    end = _walk(data, pos, 1)
    if end != len(data):
        raise EvidenceFormatError("bytes after the CBOR item")
    try:
        value = cbor2.loads(data[pos:])
    except (cbor2.CBORDecodeError, ValueError, TypeError, OverflowError, RecursionError, MemoryError):
        raise EvidenceFormatError("evidence is not valid CBOR") from None
    return value


# --- typed document --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AttestationDocument:
    module_id: str
    digest: str
    timestamp_ms: int
    pcrs: Mapping[int, bytes]
    certificate: bytes
    cabundle: tuple[bytes, ...]
    public_key: bytes | None = None
    user_data: bytes | None = None
    nonce: bytes | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "pcrs", MappingProxyType(dict(self.pcrs)))


@dataclass(frozen=True)
class CoseSign1:
    """A parsed Nitro COSE_Sign1: raw protected header and payload (as signed), signature, typed document."""

    protected: bytes
    payload: bytes
    signature: bytes
    document: AttestationDocument = field(repr=False)

    def sig_structure(self) -> bytes:
        """Sig_structure = ["Signature1", body_protected, external_aad = h'', payload] (RFC 9052 4.4)."""
        return b"\x84" + _tstr(b"Signature1") + _bstr(self.protected) + _bstr(b"") + _bstr(self.payload)


def _len_head(major: int, n: int) -> bytes:
    if n < 24:
        return bytes([major << 5 | n])
    for info, size in ((24, 1), (25, 2), (26, 4), (27, 8)):
        if n < 1 << (8 * size):
            return bytes([major << 5 | info]) + n.to_bytes(size, "big")
    raise ValueError("length too large")


def _bstr(b: bytes) -> bytes:
    return _len_head(2, len(b)) + b


def _tstr(b: bytes) -> bytes:
    return _len_head(3, len(b)) + b


def _opt_bytes(m: Mapping[str, Any], key: str, lo: int, hi: int) -> bytes | None:
    v = m.get(key)
    if v is None:
        return None
    if not isinstance(v, bytes) or not lo <= len(v) <= hi:
        raise EvidenceFormatError("attestation document field has the wrong type or length")
    return v


def parse_document(payload: bytes) -> AttestationDocument:
    """The COSE payload: the attestation document map, with AWS's types and limits."""
    m = loads_strict(payload)
    if not isinstance(m, dict) or not all(isinstance(k, str) for k in m):
        raise EvidenceFormatError("attestation document is not a text-keyed map")
    keys = set(m)
    if not keys >= _REQUIRED or keys - _REQUIRED - _OPTIONAL:
        raise EvidenceFormatError("attestation document has missing or unknown fields")
    module_id = m["module_id"]
    if not isinstance(module_id, str) or not module_id:
        raise EvidenceFormatError("module_id invalid")
    if m["digest"] != DIGEST:
        raise EvidenceFormatError("digest must be SHA384")
    ts = m["timestamp"]
    if not isinstance(ts, int) or isinstance(ts, bool) or not 0 < ts < 2**64:
        raise EvidenceFormatError("timestamp invalid")
    raw_pcrs = m["pcrs"]
    if not isinstance(raw_pcrs, dict) or not 1 <= len(raw_pcrs) <= MAX_PCRS:
        raise EvidenceFormatError("pcrs must be a map of 1..32 entries")
    pcrs: dict[int, bytes] = {}
    for idx, val in raw_pcrs.items():
        if not isinstance(idx, int) or isinstance(idx, bool) or not 0 <= idx < MAX_PCRS:
            raise EvidenceFormatError("PCR index invalid")
        if not isinstance(val, bytes) or len(val) != PCR_LEN:
            raise EvidenceFormatError("PCR value must be 48 bytes")
        pcrs[idx] = val
    for required in (0, 1, 2):
        if required not in pcrs:
            raise EvidenceFormatError("PCR0, PCR1 and PCR2 are required")
    cert = m["certificate"]
    if not isinstance(cert, bytes) or not 1 <= len(cert) <= MAX_CERT_LEN:
        raise EvidenceFormatError("certificate invalid")
    bundle = m["cabundle"]
    if not isinstance(bundle, list) or not 1 <= len(bundle) <= MAX_CABUNDLE:
        raise EvidenceFormatError("cabundle must hold 1..16 certificates")
    for c in bundle:
        if not isinstance(c, bytes) or not 1 <= len(c) <= MAX_CERT_LEN:
            raise EvidenceFormatError("cabundle entry invalid")
    return AttestationDocument(
        module_id=module_id,
        digest=DIGEST,
        timestamp_ms=ts,
        pcrs=pcrs,
        certificate=cert,
        cabundle=tuple(bundle),
        public_key=_opt_bytes(m, "public_key", 1, MAX_PUBLIC_KEY_LEN),
        user_data=_opt_bytes(m, "user_data", 0, MAX_USER_DATA_LEN),
        nonce=_opt_bytes(m, "nonce", 0, MAX_NONCE_LEN),
    )


def parse_protected_header(protected: bytes) -> int:
    """The protected header must be exactly {1: -35} (ES384). Anything else, including no alg, is refused:
    the algorithm is fixed by this verifier, never taken from the attacker-controlled header."""
    if not protected:
        raise EvidenceFormatError("COSE protected header is empty (no algorithm)")
    hdr = loads_strict(protected)
    if not isinstance(hdr, dict) or set(hdr) != {COSE_ALG_LABEL}:
        raise EvidenceFormatError("COSE protected header must hold only the algorithm")
    alg = hdr[COSE_ALG_LABEL]
    if not isinstance(alg, int) or isinstance(alg, bool) or alg != COSE_ALG_ES384:
        raise EvidenceFormatError("COSE algorithm must be ES384")
    return alg


def parse_cose_sign1(data: bytes) -> CoseSign1:
    """Tagged (18) or untagged COSE_Sign1 carrying a Nitro attestation document."""
    if not isinstance(data, bytes):
        raise TypeError("document must be bytes")
    if not data or len(data) > MAX_DOCUMENT_LEN:
        raise EvidenceFormatError("attestation document size invalid")
    outer = loads_strict(data, allow_tag=COSE_SIGN1_TAG)
    if not isinstance(outer, list) or len(outer) != 4:
        raise EvidenceFormatError("COSE_Sign1 must be an array of 4")
    protected, unprotected, payload, signature = outer
    if not isinstance(protected, bytes) or not isinstance(payload, bytes) or not isinstance(signature, bytes):
        raise EvidenceFormatError("COSE_Sign1 elements have the wrong type")
    if not 1 <= len(payload) <= MAX_PAYLOAD_LEN:
        raise EvidenceFormatError("attestation document payload size invalid")
    if not isinstance(unprotected, dict) or unprotected:
        raise EvidenceFormatError("COSE unprotected header must be empty")
    parse_protected_header(protected)
    if len(signature) != SIGNATURE_LEN:
        raise EvidenceFormatError("ES384 signature must be 96 bytes")
    return CoseSign1(
        protected=protected, payload=payload, signature=signature, document=parse_document(payload)
    )
