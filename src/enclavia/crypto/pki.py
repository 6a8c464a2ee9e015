"""X.509 for attestation: strict DER parsing, signature and chain checks, and a chain-verification cache.

This is the one place where attestation code meets ``cryptography.hazmat``. Verifiers (Nitro, SEV-SNP, NVIDIA,
TDX) call these helpers and never touch hazmat objects themselves.

Why a parser of our own: AMD VCEK/VLEK certificates carry serial number 0, which RFC 5280 forbids;
pyca/cryptography warns on them today and has announced it will refuse them. The fields a verifier reads
(names, validity, public key, extensions, the signed TBS bytes) are few, so they are read here with a small,
strict DER reader (definite lengths, minimal length encodings, no trailing bytes). Keys and signatures are
still checked by OpenSSL through pyca/cryptography.

Errors: malformed certificates and failed links raise :class:`CertificateChainError`; a chain that does not
end at the pinned root raises :class:`UntrustedRootError`; validity failures raise
:class:`CertificateExpiredError` or :class:`CertificateNotYetValidError`; a data signature that does not
verify raises :class:`SignatureInvalidError`. Misuse (naive datetimes, wrong argument types) raises
``ValueError``/``TypeError``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from types import MappingProxyType
from typing import Literal

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.hazmat.primitives.serialization import load_der_public_key

from enclavia.errors import (
    CertificateChainError,
    CertificateExpiredError,
    CertificateNotYetValidError,
    CertificateRevokedError,
    CollateralError,
    SignatureInvalidError,
    UntrustedRootError,
)

__all__ = [
    "OID_BASIC_CONSTRAINTS",
    "OID_KEY_USAGE",
    "Certificate",
    "ChainCache",
    "Crl",
    "Extension",
    "PublicKey",
    "certificate_from_pem",
    "check_crl",
    "check_not_revoked",
    "check_validity",
    "der_integer",
    "der_octet_string",
    "der_string",
    "load_pem_certificates",
    "load_public_key",
    "parse_certificate",
    "parse_crl",
    "pem_to_der",
    "verify_cert_signature",
    "verify_chain",
    "verify_ecdsa_p384",
    "verify_ecdsa_p384_rs",
]

MAX_CERTIFICATE_LEN = 16 * 1024
MAX_PEM_LEN = 256 * 1024
MAX_PEM_CERTIFICATES = 16
MAX_CHAIN_LEN = 8
MIN_RSA_BITS = 2048
P384_COORD_LEN = 48

OID_BASIC_CONSTRAINTS = "2.5.29.19"
OID_KEY_USAGE = "2.5.29.15"
OID_COMMON_NAME = "2.5.4.3"
_KNOWN_CRITICAL = frozenset({OID_BASIC_CONSTRAINTS, OID_KEY_USAGE})

_HashFactory = Callable[[], hashes.HashAlgorithm]
_OID_ECDSA: dict[str, _HashFactory] = {
    "1.2.840.10045.4.3.2": hashes.SHA256,
    "1.2.840.10045.4.3.3": hashes.SHA384,
    "1.2.840.10045.4.3.4": hashes.SHA512,
}
_OID_RSA_PKCS1: dict[str, _HashFactory] = {
    "1.2.840.113549.1.1.11": hashes.SHA256,
    "1.2.840.113549.1.1.12": hashes.SHA384,
    "1.2.840.113549.1.1.13": hashes.SHA512,
}
_OID_RSA_PSS = "1.2.840.113549.1.1.10"
_OID_MGF1 = "1.2.840.113549.1.1.8"
_OID_HASH: dict[str, _HashFactory] = {
    "2.16.840.1.101.3.4.2.1": hashes.SHA256,
    "2.16.840.1.101.3.4.2.2": hashes.SHA384,
    "2.16.840.1.101.3.4.2.3": hashes.SHA512,
}
_ALLOWED_CURVES = (ec.SECP256R1, ec.SECP384R1, ec.SECP521R1)

# --- strict DER reader ---------------------------------------------------------------------------------

_SEQUENCE = 0x30
_SET = 0x31
_INTEGER = 0x02
_BIT_STRING = 0x03
_OCTET_STRING = 0x04
_NULL = 0x05
_OID = 0x06
_BOOLEAN = 0x01
_UTC_TIME = 0x17
_GENERALIZED_TIME = 0x18
_STRING_TAGS = {0x0C: "utf-8", 0x13: "ascii", 0x16: "ascii", 0x14: "latin-1", 0x1E: "utf-16-be"}


class _DerError(Exception):
    """Internal: bytes are not the DER we expect. Turned into a content-free EnclaviaError at the API edge."""


@dataclass
class _Der:
    """A cursor over DER bytes: reads one TLV at a time, never past ``end``."""

    data: bytes
    pos: int = 0
    end: int = -1

    def __post_init__(self) -> None:
        if self.end < 0:
            self.end = len(self.data)

    def at_end(self) -> bool:
        return self.pos >= self.end

    def peek_tag(self) -> int | None:
        return self.data[self.pos] if self.pos < self.end else None

    def read_tlv(self) -> tuple[int, int, int, int]:
        """Return (tag, start of TLV, start of value, end of value); advance past it."""
        start = self.pos
        if self.pos + 2 > self.end:
            raise _DerError("truncated")
        tag = self.data[self.pos]
        if tag & 0x1F == 0x1F:
            raise _DerError("high tag numbers are not used here")
        first = self.data[self.pos + 1]
        self.pos += 2
        if first < 0x80:
            length = first
        else:
            n = first & 0x7F
            if n == 0 or n > 4:
                raise _DerError("indefinite or oversized length")
            if self.pos + n > self.end:
                raise _DerError("truncated length")
            raw = self.data[self.pos : self.pos + n]
            self.pos += n
            if raw[0] == 0:
                raise _DerError("non-minimal length")
            length = int.from_bytes(raw, "big")
            if length < 0x80:
                raise _DerError("non-minimal length")
        vstart = self.pos
        vend = vstart + length
        if vend > self.end:
            raise _DerError("length past end")
        self.pos = vend
        return tag, start, vstart, vend

    def expect(self, tag: int) -> tuple[int, int, int]:
        t, start, vstart, vend = self.read_tlv()
        if t != tag:
            raise _DerError("unexpected tag")
        return start, vstart, vend

    def sub(self, tag: int) -> _Der:
        _, vstart, vend = self.expect(tag)
        return _Der(self.data, vstart, vend)

    def value(self, tag: int) -> bytes:
        _, vstart, vend = self.expect(tag)
        return self.data[vstart:vend]

    def raw(self, tag: int) -> bytes:
        start, _, vend = self.expect(tag)
        return self.data[start:vend]

    def done(self) -> None:
        if self.pos != self.end:
            raise _DerError("trailing bytes")


def _int_value(v: bytes, *, signed_ok: bool = False) -> int:
    if not v:
        raise _DerError("empty integer")
    if len(v) > 1 and ((v[0] == 0 and v[1] < 0x80) or (v[0] == 0xFF and v[1] >= 0x80)):
        raise _DerError("non-minimal integer")
    n = int.from_bytes(v, "big", signed=True)
    if n < 0 and not signed_ok:
        raise _DerError("negative integer")
    return n


def _oid_value(v: bytes) -> str:
    if not v or v[-1] & 0x80:
        raise _DerError("bad OID")
    arcs: list[int] = []
    n = 0
    first = True
    for i, b in enumerate(v):
        if n == 0 and b == 0x80 and (i == 0 or not v[i - 1] & 0x80):
            raise _DerError("non-minimal OID arc")
        n = (n << 7) | (b & 0x7F)
        if not b & 0x80:
            if first:
                arcs.extend((min(n // 40, 2), n - 40 * min(n // 40, 2)))
                first = False
            else:
                arcs.append(n)
            n = 0
    return ".".join(str(a) for a in arcs)


def _time_value(tag: int, v: bytes) -> datetime:
    try:
        s = v.decode("ascii")
    except UnicodeDecodeError:
        raise _DerError("bad time") from None
    if tag == _UTC_TIME:
        if len(s) != 13 or not s.endswith("Z") or not s[:12].isdigit():
            raise _DerError("bad UTCTime")
        yy = int(s[:2])
        year = 1900 + yy if yy >= 50 else 2000 + yy
        rest = s[2:12]
    elif tag == _GENERALIZED_TIME:
        if len(s) != 15 or not s.endswith("Z") or not s[:14].isdigit():
            raise _DerError("bad GeneralizedTime")
        year = int(s[:4])
        rest = s[4:14]
    else:
        raise _DerError("bad time tag")
    try:
        return datetime(
            year, int(rest[0:2]), int(rest[2:4]), int(rest[4:6]), int(rest[6:8]), int(rest[8:10]), tzinfo=UTC
        )
    except ValueError:
        raise _DerError("bad time value") from None


def _bit_string_bytes(v: bytes) -> tuple[bytes, int]:
    if not v or v[0] > 7 or (len(v) == 1 and v[0] != 0):
        raise _DerError("bad BIT STRING")
    return v[1:], v[0]


# --- public value decoders (used by platform code for vendor extensions) -------------------------------


def der_integer(value: bytes) -> int:
    """Decode a DER INTEGER TLV that makes up all of ``value`` (e.g. an X.509 extension value)."""
    try:
        d = _Der(value)
        n = _int_value(d.value(_INTEGER))
        d.done()
    except _DerError:
        raise CertificateChainError("extension is not a DER INTEGER") from None
    return n


def der_string(value: bytes) -> str:
    """Decode a DER string TLV (IA5String, UTF8String, PrintableString...) that makes up all of ``value``."""
    try:
        d = _Der(value)
        tag, _, vs, ve = d.read_tlv()
        d.done()
        enc = _STRING_TAGS.get(tag)
        if enc is None:
            raise _DerError("not a string")
        return value[vs:ve].decode(enc)
    except (_DerError, UnicodeDecodeError):
        raise CertificateChainError("extension is not a DER string") from None


def der_octet_string(value: bytes) -> bytes:
    """Decode a DER OCTET STRING TLV that makes up all of ``value``."""
    try:
        d = _Der(value)
        out = d.value(_OCTET_STRING)
        d.done()
    except _DerError:
        raise CertificateChainError("extension is not a DER OCTET STRING") from None
    return out


# --- keys ----------------------------------------------------------------------------------------------


class PublicKey:
    """An opaque verified public key (EC P-256/P-384/P-521 or RSA >= 2048 bits)."""

    __slots__ = ("_key",)

    def __init__(self, key: ec.EllipticCurvePublicKey | rsa.RSAPublicKey) -> None:
        self._key = key

    @property
    def kind(self) -> str:
        if isinstance(self._key, ec.EllipticCurvePublicKey):
            return f"ec-{self._key.curve.name}"
        return f"rsa-{self._key.key_size}"

    def __repr__(self) -> str:
        return f"PublicKey({self.kind})"


def load_public_key(spki_der: bytes) -> PublicKey:
    """Load a DER SubjectPublicKeyInfo; raise CertificateChainError for malformed or disallowed keys."""
    try:
        key = load_der_public_key(spki_der)
    except (ValueError, UnsupportedAlgorithm, TypeError):
        raise CertificateChainError("public key does not parse") from None
    if isinstance(key, ec.EllipticCurvePublicKey):
        if not isinstance(key.curve, _ALLOWED_CURVES):
            raise CertificateChainError("EC curve not allowed")
        return PublicKey(key)
    if isinstance(key, rsa.RSAPublicKey):
        if key.key_size < MIN_RSA_BITS:
            raise CertificateChainError("RSA key too small")
        return PublicKey(key)
    raise CertificateChainError("public key type not allowed")


# --- certificates --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Extension:
    critical: bool
    value: bytes


@dataclass(frozen=True)
class BasicConstraints:
    ca: bool
    path_length: int | None


@dataclass(frozen=True, eq=False)
class Certificate:
    """The fields of one X.509 v3 certificate that verifiers use. Built only by :func:`parse_certificate`."""

    der: bytes
    tbs: bytes
    signature_algorithm: str
    signature_params: bytes | None
    signature: bytes
    serial: int
    issuer: bytes
    subject: bytes
    not_before: datetime
    not_after: datetime
    spki: bytes
    extensions: Mapping[str, Extension] = field(default_factory=dict)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Certificate) and other.der == self.der

    def __hash__(self) -> int:
        return hash(self.der)

    @cached_property
    def sha256(self) -> bytes:
        return hashlib.sha256(self.der).digest()

    @cached_property
    def public_key(self) -> PublicKey:
        return load_public_key(self.spki)

    @property
    def self_issued(self) -> bool:
        return self.issuer == self.subject

    @cached_property
    def subject_common_name(self) -> str | None:
        return _common_name(self.subject)

    @cached_property
    def issuer_common_name(self) -> str | None:
        return _common_name(self.issuer)

    def extension(self, oid: str) -> bytes | None:
        ext = self.extensions.get(oid)
        return ext.value if ext is not None else None

    @cached_property
    def basic_constraints(self) -> BasicConstraints | None:
        raw = self.extension(OID_BASIC_CONSTRAINTS)
        if raw is None:
            return None
        try:
            d = _Der(raw)
            seq = d.sub(_SEQUENCE)
            d.done()
            ca = False
            path: int | None = None
            if seq.peek_tag() == _BOOLEAN:
                b = seq.value(_BOOLEAN)
                if b not in (b"\x00", b"\xff"):
                    raise _DerError("bad BOOLEAN")
                ca = b == b"\xff"
            if seq.peek_tag() == _INTEGER:
                path = _int_value(seq.value(_INTEGER))
            seq.done()
        except _DerError:
            raise CertificateChainError("basicConstraints does not parse") from None
        return BasicConstraints(ca=ca, path_length=path)

    @cached_property
    def key_usage(self) -> frozenset[int] | None:
        """Set bits of keyUsage (0 digitalSignature ... 5 keyCertSign, 6 cRLSign), or None if absent."""
        raw = self.extension(OID_KEY_USAGE)
        if raw is None:
            return None
        try:
            d = _Der(raw)
            bits, _unused = _bit_string_bytes(d.value(_BIT_STRING))
            d.done()
        except _DerError:
            raise CertificateChainError("keyUsage does not parse") from None
        return frozenset(i * 8 + j for i, byte in enumerate(bits) for j in range(8) if byte & (0x80 >> j))


def _common_name(name_der: bytes) -> str | None:
    """The single CN of a Name, or None if there is none or more than one."""
    found: list[str] = []
    try:
        d = _Der(name_der)
        name = d.sub(_SEQUENCE)
        d.done()
        while not name.at_end():
            rdn = name.sub(_SET)
            while not rdn.at_end():
                atv = rdn.sub(_SEQUENCE)
                oid = _oid_value(atv.value(_OID))
                tag, _, vs, ve = atv.read_tlv()
                atv.done()
                if oid == OID_COMMON_NAME:
                    enc = _STRING_TAGS.get(tag)
                    if enc is None:
                        return None
                    found.append(name_der[vs:ve].decode(enc))
    except (_DerError, UnicodeDecodeError):
        return None
    return found[0] if len(found) == 1 else None


def _algorithm_identifier(d: _Der) -> tuple[str, bytes | None, bytes]:
    """Read an AlgorithmIdentifier; return (oid, raw params TLV or None, raw whole TLV)."""
    start, vs, ve = d.expect(_SEQUENCE)
    inner = _Der(d.data, vs, ve)
    oid = _oid_value(inner.value(_OID))
    params: bytes | None = None
    if not inner.at_end():
        _t, pstart, _pvs, pend = inner.read_tlv()
        params = d.data[pstart:pend]
    inner.done()
    return oid, params, d.data[start:ve]


def parse_certificate(der: bytes) -> Certificate:  # noqa: PLR0915
    """Parse one DER X.509 v3 certificate strictly; raise CertificateChainError if it is not one."""
    if not isinstance(der, bytes):
        raise TypeError("certificate must be bytes")
    if not der or len(der) > MAX_CERTIFICATE_LEN:
        raise CertificateChainError("certificate has an invalid length")
    try:
        top = _Der(der)
        cert = top.sub(_SEQUENCE)
        top.done()
        tbs_start, tbs_vs, tbs_end = cert.expect(_SEQUENCE)
        tbs = _Der(der, tbs_vs, tbs_end)
        sig_oid, sig_params, sig_alg_raw = _algorithm_identifier(cert)
        signature, unused = _bit_string_bytes(cert.value(_BIT_STRING))
        if unused:
            raise _DerError("signature has unused bits")
        cert.done()

        if tbs.peek_tag() != 0xA0:
            raise _DerError("only X.509 v3 certificates are accepted")
        ver = tbs.sub(0xA0)
        if _int_value(ver.value(_INTEGER)) != 2:
            raise _DerError("only X.509 v3 certificates are accepted")
        ver.done()
        serial_raw = tbs.value(_INTEGER)
        if len(serial_raw) > 21:
            raise _DerError("serial too long")
        serial = _int_value(serial_raw)  # AMD VCEK/VLEK use 0: allowed, negatives are not
        _tbs_sig_oid, _tbs_sig_params, tbs_sig_raw = _algorithm_identifier(tbs)
        if tbs_sig_raw != sig_alg_raw:
            raise _DerError("inner and outer signature algorithms differ")
        issuer = tbs.raw(_SEQUENCE)
        validity = tbs.sub(_SEQUENCE)
        t1, _, v1s, v1e = validity.read_tlv()
        not_before = _time_value(t1, der[v1s:v1e])
        t2, _, v2s, v2e = validity.read_tlv()
        not_after = _time_value(t2, der[v2s:v2e])
        validity.done()
        subject = tbs.raw(_SEQUENCE)
        spki = tbs.raw(_SEQUENCE)
        extensions: dict[str, Extension] = {}
        for opt_tag in (0x81, 0x82):  # issuerUniqueID, subjectUniqueID: skipped
            if tbs.peek_tag() == opt_tag:
                tbs.read_tlv()
        if tbs.peek_tag() == 0xA3:
            wrapper = tbs.sub(0xA3)
            exts = wrapper.sub(_SEQUENCE)
            wrapper.done()
            if exts.at_end():
                raise _DerError("empty extensions")
            while not exts.at_end():
                ext = exts.sub(_SEQUENCE)
                oid = _oid_value(ext.value(_OID))
                critical = _read_critical(ext)
                value = ext.value(_OCTET_STRING)
                ext.done()
                if oid in extensions:
                    raise _DerError("duplicate extension")
                extensions[oid] = Extension(critical=critical, value=value)
        tbs.done()
    except _DerError:
        raise CertificateChainError("certificate does not parse") from None
    return Certificate(
        der=der,
        tbs=der[tbs_start:tbs_end],
        signature_algorithm=sig_oid,
        signature_params=sig_params,
        signature=signature,
        serial=serial,
        issuer=issuer,
        subject=subject,
        not_before=not_before,
        not_after=not_after,
        spki=spki,
        extensions=MappingProxyType(extensions),
    )


_PEM_BLOCK = re.compile(rb"-----BEGIN CERTIFICATE-----([A-Za-z0-9+/=\s]*?)-----END CERTIFICATE-----")


def pem_to_der(pem: bytes) -> list[bytes]:
    """The DER of every CERTIFICATE block of a PEM bundle, in order (text outside the blocks is ignored)."""
    if not isinstance(pem, bytes):
        raise TypeError("PEM must be bytes")
    if len(pem) > MAX_PEM_LEN:
        raise CertificateChainError("PEM bundle too large")
    out: list[bytes] = []
    for m in _PEM_BLOCK.finditer(pem):
        try:
            out.append(base64.b64decode(b"".join(m.group(1).split()), validate=True))
        except (binascii.Error, ValueError):
            raise CertificateChainError("PEM certificate is not valid base64") from None
        if len(out) > MAX_PEM_CERTIFICATES:
            raise CertificateChainError("too many certificates in PEM bundle")
    if not out:
        raise CertificateChainError("no certificate in PEM bundle")
    return out


def load_pem_certificates(pem: bytes, *, cache: ChainCache | None = None) -> list[Certificate]:
    """Every CERTIFICATE block of a PEM bundle, parsed, in order (memoized through ``cache`` if given)."""
    parse = cache.certificate if cache is not None else parse_certificate
    return [parse(der) for der in pem_to_der(pem)]


def certificate_from_pem(pem: bytes) -> Certificate:
    """Exactly one certificate from PEM."""
    certs = load_pem_certificates(pem)
    if len(certs) != 1:
        raise CertificateChainError("expected exactly one PEM certificate")
    return certs[0]


# --- signatures ----------------------------------------------------------------------------------------


def _pss_params(params: bytes | None) -> tuple[hashes.HashAlgorithm, int]:
    """RSASSA-PSS-params (RFC 4055): hash and MGF1 hash must be SHA-256/384/512 and equal; trailer 1."""
    if params is None:
        raise _DerError("PSS parameters missing")
    d = _Der(params)
    seq = d.sub(_SEQUENCE)
    d.done()
    hash_cls: _HashFactory | None = None
    mgf_hash_cls: _HashFactory | None = None
    salt = 20
    trailer = 1
    if seq.peek_tag() == 0xA0:
        w = seq.sub(0xA0)
        oid, hp, _ = _algorithm_identifier(w)
        w.done()
        if hp not in (None, b"\x05\x00"):
            raise _DerError("bad hash params")
        hash_cls = _OID_HASH.get(oid)
    if seq.peek_tag() == 0xA1:
        w = seq.sub(0xA1)
        oid, mp, _ = _algorithm_identifier(w)
        w.done()
        if oid != _OID_MGF1 or mp is None:
            raise _DerError("only MGF1 is accepted")
        md = _Der(mp)
        moid, mhp, _ = _algorithm_identifier(md)
        md.done()
        if mhp not in (None, b"\x05\x00"):
            raise _DerError("bad MGF1 hash params")
        mgf_hash_cls = _OID_HASH.get(moid)
    if seq.peek_tag() == 0xA2:
        w = seq.sub(0xA2)
        salt = _int_value(w.value(_INTEGER))
        w.done()
    if seq.peek_tag() == 0xA3:
        w = seq.sub(0xA3)
        trailer = _int_value(w.value(_INTEGER))
        w.done()
    seq.done()
    # Absent hash / MGF mean SHA-1 (RFC 4055 defaults): refused.
    if hash_cls is None or mgf_hash_cls is None or hash_cls is not mgf_hash_cls or trailer != 1:
        raise _DerError("PSS parameters not allowed")
    h = hash_cls()
    if salt < h.digest_size or salt > 512:
        raise _DerError("PSS salt length not allowed")
    return h, salt


def _verify_x509_signature(
    key: PublicKey, alg: str, params: bytes | None, signature: bytes, data: bytes
) -> None:
    """Raise InvalidSignature / _DerError when the signature is bad or the algorithm is not allowed."""
    k = key._key
    if alg in _OID_ECDSA:
        if params is not None or not isinstance(k, ec.EllipticCurvePublicKey):
            raise _DerError("ECDSA algorithm/key mismatch")
        k.verify(signature, data, ec.ECDSA(_OID_ECDSA[alg]()))
    elif alg in _OID_RSA_PKCS1:
        if params not in (None, b"\x05\x00") or not isinstance(k, rsa.RSAPublicKey):
            raise _DerError("RSA algorithm/key mismatch")
        k.verify(signature, data, padding.PKCS1v15(), _OID_RSA_PKCS1[alg]())
    elif alg == _OID_RSA_PSS:
        if not isinstance(k, rsa.RSAPublicKey):
            raise _DerError("RSA-PSS algorithm/key mismatch")
        h, salt = _pss_params(params)
        k.verify(signature, data, padding.PSS(mgf=padding.MGF1(h), salt_length=salt), h)
    else:
        raise _DerError("signature algorithm not allowed")


def verify_cert_signature(cert: Certificate, issuer: Certificate) -> None:
    """``cert`` names ``issuer`` as its issuer and carries a valid signature by ``issuer``'s key.

    Raises CertificateChainError (name mismatch, bad signature, algorithm not allowed).
    """
    if cert.issuer != issuer.subject:
        raise CertificateChainError("issuer name does not match")
    try:
        _verify_x509_signature(
            issuer.public_key, cert.signature_algorithm, cert.signature_params, cert.signature, cert.tbs
        )
    except (InvalidSignature, _DerError, ValueError):
        raise CertificateChainError("certificate signature does not verify") from None


def _require_aware(now: datetime) -> None:
    if not isinstance(now, datetime):
        raise TypeError("now must be a datetime")
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be timezone-aware")


def check_validity(cert: Certificate, now: datetime) -> None:
    """notBefore <= now <= notAfter (RFC 5280 4.1.2.5), else CertificateNotYetValidError / ExpiredError."""
    _require_aware(now)
    if now < cert.not_before:
        raise CertificateNotYetValidError()
    if now > cert.not_after:
        raise CertificateExpiredError()


def _check_issuer_profile(issuer: Certificate, depth_below: int) -> None:
    """An issuing certificate must be a CA allowed to sign certificates at this depth.

    ``depth_below`` is the number of intermediate CA certificates between ``issuer`` and the leaf.
    """
    bc = issuer.basic_constraints
    if bc is None or not bc.ca:
        raise CertificateChainError("issuer is not a CA")
    if bc.path_length is not None and depth_below > bc.path_length:
        raise CertificateChainError("path length constraint exceeded")
    ku = issuer.key_usage
    if ku is not None and 5 not in ku:
        raise CertificateChainError("issuer key usage does not allow certificate signing")


def _check_critical(cert: Certificate) -> None:
    for oid, ext in cert.extensions.items():
        if ext.critical and oid not in _KNOWN_CRITICAL:
            raise CertificateChainError("unknown critical extension")


def verify_ecdsa_p384(
    public_key: PublicKey | Certificate,
    signature: bytes,
    data: bytes,
    *,
    encoding: Literal["raw", "der"],
) -> None:
    """ECDSA P-384 / SHA-384 over ``data``. ``encoding`` says how ``signature`` is given: ``raw`` is r||s,
    96 bytes big-endian (COSE, RFC 9053); ``der`` is an ASN.1 ECDSA-Sig-Value.
    Raises SignatureInvalidError."""
    if encoding == "raw":
        if len(signature) != 2 * P384_COORD_LEN:
            raise SignatureInvalidError("raw P-384 signature must be 96 bytes")
        r = int.from_bytes(signature[:P384_COORD_LEN], "big")
        s = int.from_bytes(signature[P384_COORD_LEN:], "big")
        verify_ecdsa_p384_rs(public_key, r, s, data)
        return
    if encoding != "der":
        raise ValueError("encoding must be 'raw' or 'der'")
    key = _p384_key(public_key)
    try:
        key.verify(signature, data, ec.ECDSA(hashes.SHA384()))
    except (InvalidSignature, ValueError):
        raise SignatureInvalidError() from None


def verify_ecdsa_p384_rs(public_key: PublicKey | Certificate, r: int, s: int, data: bytes) -> None:
    """ECDSA P-384 / SHA-384 with the signature given as integers (e.g. AMD's little-endian r and s)."""
    key = _p384_key(public_key)
    if r <= 0 or s <= 0 or r.bit_length() > 384 or s.bit_length() > 384:
        raise SignatureInvalidError("signature values out of range")
    try:
        key.verify(encode_dss_signature(r, s), data, ec.ECDSA(hashes.SHA384()))
    except (InvalidSignature, ValueError):
        raise SignatureInvalidError() from None


def _p384_key(public_key: PublicKey | Certificate) -> ec.EllipticCurvePublicKey:
    if isinstance(public_key, Certificate):
        public_key = public_key.public_key
    if not isinstance(public_key, PublicKey):
        raise TypeError("public_key must be a PublicKey or Certificate")
    k = public_key._key
    if not isinstance(k, ec.EllipticCurvePublicKey) or not isinstance(k.curve, ec.SECP384R1):
        raise SignatureInvalidError("signing key is not P-384")
    return k


# --- chains and the cache ------------------------------------------------------------------------------


class ChainCache:
    """Remembers chains that verified, so that a warm verifier skips RSA/ECDSA chain checks.

    Key: SHA-256 over the DER digests of every certificate in the chain (leaf first), the pinned root, and a
    caller-chosen context string. Value: the window in which all of them are valid (latest notBefore,
    earliest notAfter). A hit counts only while ``now`` lies in that window, so expiry is never cached away.
    Failures are never cached. Parsed certificates are memoized by DER digest as well (they are immutable).

    Bounded (LRU) and thread-safe. Pass one instance explicitly to the verifiers; there is no global cache.
    A VCEK does not change for a given chip and TCB, so in a fleet this removes two RSA-4096 verifications
    from every SEV-SNP report; Nitro leaf certificates live about three hours.
    """

    def __init__(self, max_chains: int = 1024, max_certificates: int = 4096) -> None:
        if max_chains < 1 or max_certificates < 1:
            raise ValueError("cache sizes must be positive")
        self._max_chains = max_chains
        self._max_certs = max_certificates
        self._chains: OrderedDict[bytes, tuple[datetime, datetime]] = OrderedDict()
        self._certs: OrderedDict[bytes, Certificate] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    @staticmethod
    def key(chain: Sequence[Certificate], root: Certificate, context: str = "") -> bytes:
        h = hashlib.sha256(b"enclavia-chain-cache-v1\x00" + context.encode() + b"\x00")
        for c in (*chain, root):
            h.update(c.sha256)
        return h.digest()

    def lookup(self, key: bytes, now: datetime) -> bool:
        with self._lock:
            window = self._chains.get(key)
            if window is None or not window[0] <= now <= window[1]:
                self.misses += 1
                return False
            self._chains.move_to_end(key)
            self.hits += 1
            return True

    def store(self, key: bytes, not_before: datetime, not_after: datetime) -> None:
        with self._lock:
            self._chains[key] = (not_before, not_after)
            self._chains.move_to_end(key)
            while len(self._chains) > self._max_chains:
                self._chains.popitem(last=False)

    def certificate(self, der: bytes) -> Certificate:
        """``parse_certificate(der)``, memoized."""
        digest = hashlib.sha256(der).digest()
        with self._lock:
            cert = self._certs.get(digest)
            if cert is not None:
                self._certs.move_to_end(digest)
                return cert
        cert = parse_certificate(der)
        with self._lock:
            self._certs[digest] = cert
            while len(self._certs) > self._max_certs:
                self._certs.popitem(last=False)
        return cert

    def clear(self) -> None:
        with self._lock:
            self._chains.clear()
            self._certs.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._chains)


def verify_chain(
    chain: Sequence[Certificate],
    root: Certificate,
    *,
    now: datetime,
    cache: ChainCache | None = None,
    context: str = "",
) -> None:
    """Verify ``chain`` (leaf first, without the root) up to the pinned ``root``, at time ``now``.

    Checks, in order: every certificate and the root are valid at ``now``; no unknown critical extensions;
    each link: issuer name, signature (algorithm allow-list), issuer is a CA within its path length and may
    sign certificates; the last certificate is issued by ``root`` and its signature verifies with ``root``'s
    key (else UntrustedRootError). The root is trusted because it is pinned, byte for byte, by the caller.
    """
    _require_aware(now)
    if not chain or len(chain) > MAX_CHAIN_LEN:
        raise CertificateChainError("chain length not allowed")
    key = ChainCache.key(chain, root, context) if cache is not None else b""
    if cache is not None and cache.lookup(key, now):
        return
    everything = (*chain, root)
    for c in everything:
        check_validity(c, now)
        _check_critical(c)
    for i, cert in enumerate(chain):
        issuer = chain[i + 1] if i + 1 < len(chain) else root
        if issuer is root:
            if cert.issuer != root.subject:
                raise UntrustedRootError("chain does not end at the pinned root")
            try:
                _verify_x509_signature(
                    root.public_key, cert.signature_algorithm, cert.signature_params, cert.signature, cert.tbs
                )
            except (InvalidSignature, _DerError, ValueError):
                raise UntrustedRootError("chain does not end at the pinned root") from None
        else:
            verify_cert_signature(cert, issuer)
        _check_issuer_profile(issuer, depth_below=i)
    if cache is not None:
        cache.store(key, max(c.not_before for c in everything), min(c.not_after for c in everything))


def fingerprint_sha256(certs: Iterable[Certificate]) -> list[str]:
    """Hex SHA-256 of each certificate's DER (for pins and logs)."""
    return [c.sha256.hex() for c in certs]


# --- certificate revocation lists ----------------------------------------------------------------------

OID_CRL_NUMBER = "2.5.29.20"
OID_AUTHORITY_KEY_ID = "2.5.29.35"
_KNOWN_CRL_EXTENSIONS = frozenset({OID_CRL_NUMBER, OID_AUTHORITY_KEY_ID})
MAX_CRL_LEN = 1024 * 1024


@dataclass(frozen=True, eq=False)
class Crl:
    """One X.509 v2 CRL (RFC 5280 section 5): the fields a verifier needs. Built by :func:`parse_crl`."""

    der: bytes
    tbs: bytes
    signature_algorithm: str
    signature_params: bytes | None
    signature: bytes
    issuer: bytes
    this_update: datetime
    next_update: datetime | None
    revoked_serials: frozenset[int]


def _read_time(d: _Der) -> datetime:
    t, _, vs, ve = d.read_tlv()
    return _time_value(t, d.data[vs:ve])


def _read_critical(ext: _Der) -> bool:
    """The optional ``critical BOOLEAN DEFAULT FALSE`` of an Extension."""
    if ext.peek_tag() != _BOOLEAN:
        return False
    b = ext.value(_BOOLEAN)
    if b not in (b"\x00", b"\xff"):
        raise _DerError("bad BOOLEAN")
    return b == b"\xff"


def parse_crl(der: bytes) -> Crl:  # noqa: PLR0915
    """Parse a DER CRL strictly. Unknown critical CRL or entry extensions are refused (RFC 5280 5.2, 5.3):
    an indirect or delta CRL, for instance, would change what the list means. Raises CollateralError."""
    if not isinstance(der, bytes):
        raise TypeError("CRL must be bytes")
    if not der or len(der) > MAX_CRL_LEN:
        raise CollateralError("CRL has an invalid length")
    try:
        top = _Der(der)
        crl = top.sub(_SEQUENCE)
        top.done()
        tbs_start, tbs_vs, tbs_end = crl.expect(_SEQUENCE)
        tbs = _Der(der, tbs_vs, tbs_end)
        sig_oid, sig_params, sig_alg_raw = _algorithm_identifier(crl)
        signature, unused = _bit_string_bytes(crl.value(_BIT_STRING))
        if unused:
            raise _DerError("signature has unused bits")
        crl.done()
        if _int_value(tbs.value(_INTEGER)) != 1:
            raise _DerError("only v2 CRLs are accepted")
        _oid, _params, tbs_sig_raw = _algorithm_identifier(tbs)
        if tbs_sig_raw != sig_alg_raw:
            raise _DerError("inner and outer signature algorithms differ")
        issuer = tbs.raw(_SEQUENCE)
        this_update = _read_time(tbs)
        next_update = _read_time(tbs) if tbs.peek_tag() in (_UTC_TIME, _GENERALIZED_TIME) else None
        revoked: set[int] = set()
        if tbs.peek_tag() == _SEQUENCE:
            entries = tbs.sub(_SEQUENCE)
            while not entries.at_end():
                entry = entries.sub(_SEQUENCE)
                serial_raw = entry.value(_INTEGER)
                if len(serial_raw) > 21:
                    raise _DerError("serial too long")
                serial = _int_value(serial_raw)
                _read_time(entry)
                if not entry.at_end():
                    exts = entry.sub(_SEQUENCE)
                    while not exts.at_end():
                        ext = exts.sub(_SEQUENCE)
                        _oid_value(ext.value(_OID))
                        if _read_critical(ext):
                            raise _DerError("critical CRL entry extension")
                        ext.value(_OCTET_STRING)
                        ext.done()
                entry.done()
                revoked.add(serial)
        if tbs.peek_tag() == 0xA0:
            wrapper = tbs.sub(0xA0)
            exts = wrapper.sub(_SEQUENCE)
            wrapper.done()
            while not exts.at_end():
                ext = exts.sub(_SEQUENCE)
                oid = _oid_value(ext.value(_OID))
                if _read_critical(ext) and oid not in _KNOWN_CRL_EXTENSIONS:
                    raise _DerError("unknown critical CRL extension")
                ext.value(_OCTET_STRING)
                ext.done()
        tbs.done()
    except _DerError:
        raise CollateralError("CRL does not parse") from None
    return Crl(
        der=der,
        tbs=der[tbs_start:tbs_end],
        signature_algorithm=sig_oid,
        signature_params=sig_params,
        signature=signature,
        issuer=issuer,
        this_update=this_update,
        next_update=next_update,
        revoked_serials=frozenset(revoked),
    )


def check_crl(crl: Crl, issuer: Certificate, now: datetime) -> None:
    """``crl`` is issued and signed by ``issuer`` (which may sign CRLs) and current at ``now``
    (thisUpdate <= now <= nextUpdate; a CRL without nextUpdate is refused). Raises CollateralError."""
    _require_aware(now)
    if crl.issuer != issuer.subject:
        raise CollateralError("CRL is not issued by this certificate authority")
    ku = issuer.key_usage
    if ku is not None and 6 not in ku:
        raise CollateralError("CRL issuer may not sign CRLs")
    try:
        _verify_x509_signature(
            issuer.public_key, crl.signature_algorithm, crl.signature_params, crl.signature, crl.tbs
        )
    except (InvalidSignature, _DerError, ValueError):
        raise CollateralError("CRL signature does not verify") from None
    if now < crl.this_update or crl.next_update is None or now > crl.next_update:
        raise CollateralError("CRL is not current")


def check_not_revoked(crl: Crl, cert: Certificate) -> None:
    """Raise CertificateRevokedError when ``cert`` (issued by the CRL's issuer) is listed."""
    if cert.issuer != crl.issuer:
        raise ValueError("certificate is not in this CRL's scope")
    if cert.serial in crl.revoked_serials:
        raise CertificateRevokedError()
