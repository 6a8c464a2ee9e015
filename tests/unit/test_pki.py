"""crypto.pki: the strict X.509 reader agrees with pyca/cryptography on every vendor certificate we hold, and
the signature, validity, chain and cache helpers fail closed."""

from __future__ import annotations

import contextlib
import dataclasses
import warnings
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID
from hypothesis import given, settings
from hypothesis import strategies as st

from enclavia.attestation.platforms.nitro.abi import parse_cose_sign1
from enclavia.crypto import pki
from enclavia.errors import (
    CertificateChainError,
    CertificateExpiredError,
    CertificateNotYetValidError,
    CertificateRevokedError,
    CollateralError,
    EnclaviaError,
    SignatureInvalidError,
    UntrustedRootError,
)
from tests.attestation_factory import make_nitro


def _all_vendor_certs(vectors: Path) -> list[bytes]:
    ders: list[bytes] = []
    for p in sorted((vectors / "snp").glob("*/*.pem")) + sorted((vectors / "nvidia").glob("*/*.pem")):
        ders.extend(c.der for c in pki.load_pem_certificates(p.read_bytes()))
    for p in sorted((vectors / "snp").glob("*/*.der")):
        ders.append(p.read_bytes())
    ders.extend(
        c.der
        for c in pki.load_pem_certificates((vectors / "nitro/cape-js/aws_nitro_root_g1.pem").read_bytes())
    )
    for name in ("attestation.bin", "spec_attestationDocument.cbor", "spec_keyAttestationDocument.cbor"):
        doc = parse_cose_sign1((vectors / "nitro" / "cape-js" / name).read_bytes()).document
        ders.extend([doc.certificate, *doc.cabundle])
    return ders


def test_parser_agrees_with_pyca_on_vendor_certificates(vectors: Path) -> None:
    ders = _all_vendor_certs(vectors)
    assert len(ders) > 40
    for der in ders:
        ours = pki.parse_certificate(der)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # AMD serial 0
            ref = x509.load_der_x509_certificate(der)
            serial = ref.serial_number
        assert ours.der == der
        assert ours.tbs == ref.tbs_certificate_bytes
        assert ours.signature == ref.signature
        assert ours.signature_algorithm == ref.signature_algorithm_oid.dotted_string
        assert ours.serial == serial
        assert ours.not_before == ref.not_valid_before_utc
        assert ours.not_after == ref.not_valid_after_utc
        assert ours.issuer == ref.issuer.public_bytes()
        assert ours.subject == ref.subject.public_bytes()
        cns = ref.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        assert ours.subject_common_name == (cns[0].value if len(cns) == 1 else None)
        assert ours.spki == ref.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        assert set(ours.extensions) == {e.oid.dotted_string for e in ref.extensions}
        for e in ref.extensions:
            mine = ours.extensions[e.oid.dotted_string]
            assert mine.critical == e.critical
            if isinstance(e.value, x509.KeyUsage):
                # pyca re-encodes keyUsage canonically; some vendor certs count unused bits differently.
                assert ours.key_usage is not None
                assert (5 in ours.key_usage) == e.value.key_cert_sign
                assert (0 in ours.key_usage) == e.value.digital_signature
                assert (6 in ours.key_usage) == e.value.crl_sign
            else:
                assert mine.value == e.value.public_bytes()
            if isinstance(e.value, x509.BasicConstraints):
                assert ours.basic_constraints == pki.BasicConstraints(e.value.ca, e.value.path_length)
        assert ours.public_key.kind


def _key_cert(
    *,
    key: object = None,
    issuer_key: object = None,
    issuer_name: str = "root",
    subject: str = "leaf",
    ca: bool | None = None,
    path_length: int | None = None,
    key_cert_sign: bool = True,
    not_before: datetime = datetime(2024, 1, 1, tzinfo=UTC),
    not_after: datetime = datetime(2030, 1, 1, tzinfo=UTC),
    algorithm: hashes.HashAlgorithm | None = None,
    rsa_padding: padding.AsymmetricPadding | None = None,
    critical_unknown: bool = False,
) -> tuple[x509.Certificate, object]:
    key = key or ec.generate_private_key(ec.SECP384R1())
    issuer_key = issuer_key or key
    b = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer_name)]))
        .public_key(key.public_key())  # type: ignore[attr-defined]
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
    )
    if ca is not None:
        b = b.add_extension(x509.BasicConstraints(ca=ca, path_length=path_length), critical=True)
        if ca:
            b = b.add_extension(
                x509.KeyUsage(False, False, False, False, False, key_cert_sign, True, False, False),
                critical=True,
            )
    if critical_unknown:
        b = b.add_extension(
            x509.UnrecognizedExtension(x509.ObjectIdentifier("1.2.3.4"), b"\x05\x00"), critical=True
        )
    if isinstance(issuer_key, ed25519.Ed25519PrivateKey):
        cert = b.sign(issuer_key, None)
    else:
        cert = b.sign(issuer_key, algorithm or hashes.SHA384(), rsa_padding=rsa_padding)  # type: ignore[arg-type]
    return cert, key


def _p(cert: x509.Certificate) -> pki.Certificate:
    return pki.parse_certificate(cert.public_bytes(serialization.Encoding.DER))


NOW = datetime(2025, 6, 1, tzinfo=UTC)


def _chain(depth: int) -> tuple[list[pki.Certificate], pki.Certificate]:
    root_c, root_k = _key_cert(subject="root", issuer_name="root", ca=True)
    certs = []
    issuer_k, issuer_name = root_k, "root"
    for i in range(depth):
        c, k = _key_cert(subject=f"i{i}", issuer_name=issuer_name, issuer_key=issuer_k, ca=True)
        certs.append(c)
        issuer_k, issuer_name = k, f"i{i}"
    leaf, _ = _key_cert(subject="leaf", issuer_name=issuer_name, issuer_key=issuer_k, ca=False)
    return [_p(leaf), *[_p(c) for c in reversed(certs)]], _p(root_c)


def test_chain_ok_and_links() -> None:
    chain, root = _chain(2)
    pki.verify_chain(chain, root, now=NOW)
    with pytest.raises(CertificateChainError):
        pki.verify_chain([chain[0], chain[2]], root, now=NOW)  # skipped a link: issuer name mismatch
    _, other_root = _chain(1)
    with pytest.raises(UntrustedRootError):
        pki.verify_chain(chain, other_root, now=NOW)
    with pytest.raises(CertificateChainError):
        pki.verify_chain([], root, now=NOW)


def test_root_signature_checked_not_just_name() -> None:
    root_c, root_k = _key_cert(subject="root", issuer_name="root", ca=True)
    impostor, _ = _key_cert(subject="root", issuer_name="root", ca=True)  # same name, other key
    leaf, _ = _key_cert(subject="leaf", issuer_name="root", issuer_key=root_k)
    pki.verify_chain([_p(leaf)], _p(root_c), now=NOW)
    with pytest.raises(UntrustedRootError):
        pki.verify_chain([_p(leaf)], _p(impostor), now=NOW)


def test_issuer_must_be_ca() -> None:
    root_c, root_k = _key_cert(subject="root", issuer_name="root", ca=True)
    not_ca, k = _key_cert(subject="mid", issuer_name="root", issuer_key=root_k, ca=False)
    leaf, _ = _key_cert(subject="leaf", issuer_name="mid", issuer_key=k)
    with pytest.raises(CertificateChainError):
        pki.verify_chain([_p(leaf), _p(not_ca)], _p(root_c), now=NOW)
    no_bc, k2 = _key_cert(subject="mid", issuer_name="root", issuer_key=root_k, ca=None)
    leaf2, _ = _key_cert(subject="leaf", issuer_name="mid", issuer_key=k2)
    with pytest.raises(CertificateChainError):
        pki.verify_chain([_p(leaf2), _p(no_bc)], _p(root_c), now=NOW)
    no_sign, k3 = _key_cert(
        subject="mid", issuer_name="root", issuer_key=root_k, ca=True, key_cert_sign=False
    )
    leaf3, _ = _key_cert(subject="leaf", issuer_name="mid", issuer_key=k3)
    with pytest.raises(CertificateChainError):
        pki.verify_chain([_p(leaf3), _p(no_sign)], _p(root_c), now=NOW)


def test_path_length() -> None:
    root_c, root_k = _key_cert(subject="root", issuer_name="root", ca=True)
    mid, mk = _key_cert(subject="mid", issuer_name="root", issuer_key=root_k, ca=True, path_length=0)
    sub, sk = _key_cert(subject="sub", issuer_name="mid", issuer_key=mk, ca=True)
    leaf, _ = _key_cert(subject="leaf", issuer_name="sub", issuer_key=sk)
    with pytest.raises(CertificateChainError):
        pki.verify_chain([_p(leaf), _p(sub), _p(mid)], _p(root_c), now=NOW)


def test_unknown_critical_extension() -> None:
    root_c, root_k = _key_cert(subject="root", issuer_name="root", ca=True)
    leaf, _ = _key_cert(subject="leaf", issuer_name="root", issuer_key=root_k, critical_unknown=True)
    with pytest.raises(CertificateChainError):
        pki.verify_chain([_p(leaf)], _p(root_c), now=NOW)


def test_validity_boundaries() -> None:
    nb, na = datetime(2025, 1, 1, tzinfo=UTC), datetime(2025, 12, 31, tzinfo=UTC)
    c, _ = _key_cert(not_before=nb, not_after=na)
    cert = _p(c)
    pki.check_validity(cert, nb)
    pki.check_validity(cert, na)
    with pytest.raises(CertificateNotYetValidError):
        pki.check_validity(cert, nb - timedelta(seconds=1))
    with pytest.raises(CertificateExpiredError):
        pki.check_validity(cert, na + timedelta(seconds=1))
    with pytest.raises(ValueError, match="timezone"):
        pki.check_validity(cert, datetime(2025, 6, 1))
    # Non-UTC aware times compare correctly.
    from datetime import timezone

    pki.check_validity(cert, datetime(2025, 1, 1, 1, tzinfo=timezone(timedelta(hours=1))))


def test_generalized_time_after_2049() -> None:
    c, _ = _key_cert(not_after=datetime(2060, 1, 1, tzinfo=UTC))
    assert _p(c).not_after == datetime(2060, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("key", "algorithm", "rsa_padding"),
    [
        ("rsa", hashes.SHA256(), None),
        ("rsa", hashes.SHA384(), padding.PSS(padding.MGF1(hashes.SHA384()), 48)),
        ("rsa", hashes.SHA256(), padding.PSS(padding.MGF1(hashes.SHA256()), 32)),
        ("p256", hashes.SHA256(), None),
        ("p521", hashes.SHA512(), None),
    ],
)
def test_allowed_signature_algorithms(key: str, algorithm: hashes.HashAlgorithm, rsa_padding: object) -> None:
    k = {
        "rsa": lambda: rsa.generate_private_key(65537, 2048),
        "p256": lambda: ec.generate_private_key(ec.SECP256R1()),
        "p521": lambda: ec.generate_private_key(ec.SECP521R1()),
    }[key]()
    root_c, root_k = _key_cert(key=k, subject="root", issuer_name="root", ca=True)
    leaf, _ = _key_cert(
        subject="leaf", issuer_name="root", issuer_key=root_k, algorithm=algorithm, rsa_padding=rsa_padding
    )  # type: ignore[arg-type]
    pki.verify_cert_signature(_p(leaf), _p(root_c))


def test_refused_signature_algorithms() -> None:
    ed = ed25519.Ed25519PrivateKey.generate()
    root_c, _ = _key_cert(key=ed, issuer_key=ed, subject="root", issuer_name="root", ca=True)
    with pytest.raises(CertificateChainError):
        _p(root_c).public_key  # noqa: B018 - Ed25519 keys are not on the allow-list
    rk = rsa.generate_private_key(65537, 2048)
    root_r, _ = _key_cert(key=rk, subject="root", issuer_name="root", ca=True)
    leaf, _ = _key_cert(subject="leaf", issuer_name="root", issuer_key=rk, algorithm=hashes.SHA256())
    sha256_rsa = bytes.fromhex("06092a864886f70d01010b")
    der = leaf.public_bytes(serialization.Encoding.DER)
    assert der.count(sha256_rsa) == 2
    sha1_rsa = der.replace(sha256_rsa, sha256_rsa[:-1] + b"\x05")  # sha1WithRSAEncryption, inner and outer
    with pytest.raises(CertificateChainError):
        pki.verify_cert_signature(pki.parse_certificate(sha1_rsa), _p(root_r))
    mixed = der.replace(sha256_rsa, sha256_rsa[:-1] + b"\x0c", 1)  # inner and outer algorithms differ
    with pytest.raises(CertificateChainError):
        pki.parse_certificate(mixed)
    small = rsa.generate_private_key(65537, 1024)
    weak, _ = _key_cert(key=small, subject="root", issuer_name="root", ca=True)
    with pytest.raises(CertificateChainError):
        _p(weak).public_key  # noqa: B018


def test_tampered_tbs_fails() -> None:
    root_c, root_k = _key_cert(subject="root", issuer_name="root", ca=True)
    leaf, _ = _key_cert(subject="leaf", issuer_name="root", issuer_key=root_k)
    der = bytearray(leaf.public_bytes(serialization.Encoding.DER))
    i = der.index(b"leaf")
    der[i] ^= 0x20  # 'leaf' -> 'Leaf' inside the TBS
    with pytest.raises(CertificateChainError):
        pki.verify_cert_signature(pki.parse_certificate(bytes(der)), _p(root_c))


@pytest.mark.parametrize(
    "mutate",
    [
        lambda d: d + b"\x00",  # trailing bytes
        lambda d: d[:-1],  # truncated
        lambda d: d[:1] + b"\x83\x00" + d[2:],  # non-minimal long length (breaks structure)
        lambda d: b"\x30\x80" + d[4:] + b"\x00\x00",  # indefinite length
        lambda d: b"",
        lambda d: b"\x30\x00",
    ],
)
def test_der_strictness(mutate: object) -> None:
    c, _ = _key_cert()
    der = c.public_bytes(serialization.Encoding.DER)
    with pytest.raises(CertificateChainError):
        pki.parse_certificate(mutate(der))  # type: ignore[operator]


def test_non_minimal_length_refused() -> None:
    c, _ = _key_cert()
    der = c.public_bytes(serialization.Encoding.DER)
    assert der[1] == 0x82
    # Re-encode the outer length with a redundant leading zero byte (0x83 00 xx xx).
    with pytest.raises(CertificateChainError):
        pki.parse_certificate(b"\x30\x83\x00" + der[2:])


def test_pem_loading() -> None:
    a, _ = _key_cert(subject="a")
    b, _ = _key_cert(subject="b")
    pem = (
        b"junk\n"
        + a.public_bytes(serialization.Encoding.PEM)
        + b"\n"
        + b.public_bytes(serialization.Encoding.PEM)
    )
    certs = pki.load_pem_certificates(pem)
    assert [c.subject_common_name for c in certs] == ["a", "b"]
    with pytest.raises(CertificateChainError):
        pki.certificate_from_pem(pem)
    with pytest.raises(CertificateChainError):
        pki.load_pem_certificates(b"no certificates here")
    with pytest.raises(CertificateChainError):
        pki.load_pem_certificates(b"-----BEGIN CERTIFICATE-----\nMII*\n-----END CERTIFICATE-----\n")
    with pytest.raises(CertificateChainError):
        pki.load_pem_certificates(a.public_bytes(serialization.Encoding.PEM) * 17)
    with pytest.raises(TypeError):
        pki.load_pem_certificates("text")  # type: ignore[arg-type]


def test_ecdsa_p384_helpers() -> None:
    key = ec.generate_private_key(ec.SECP384R1())
    c, _ = _key_cert(key=key)
    cert = _p(c)
    msg = b"attested"
    der_sig = key.sign(msg, ec.ECDSA(hashes.SHA384()))
    r, s = decode_dss_signature(der_sig)
    raw = r.to_bytes(48, "big") + s.to_bytes(48, "big")
    pki.verify_ecdsa_p384(cert, raw, msg, encoding="raw")
    pki.verify_ecdsa_p384(cert.public_key, der_sig, msg, encoding="der")
    pki.verify_ecdsa_p384_rs(cert, r, s, msg)
    for bad in (raw[:-1], raw + b"\x00", bytes(96), raw[:95] + bytes([raw[95] ^ 1])):
        with pytest.raises(SignatureInvalidError):
            pki.verify_ecdsa_p384(cert, bad, msg, encoding="raw")
    with pytest.raises(SignatureInvalidError):
        pki.verify_ecdsa_p384(cert, der_sig, msg + b"!", encoding="der")
    with pytest.raises(SignatureInvalidError):
        pki.verify_ecdsa_p384(cert, raw, msg, encoding="der")
    with pytest.raises(SignatureInvalidError):
        pki.verify_ecdsa_p384_rs(cert, 0, s, msg)
    with pytest.raises(SignatureInvalidError):
        pki.verify_ecdsa_p384_rs(cert, r, 1 << 400, msg)
    with pytest.raises(ValueError, match="encoding"):
        pki.verify_ecdsa_p384(cert, raw, msg, encoding="jws")  # type: ignore[arg-type]
    p256, _ = _key_cert(key=ec.generate_private_key(ec.SECP256R1()))
    with pytest.raises(SignatureInvalidError):
        pki.verify_ecdsa_p384(_p(p256), raw, msg, encoding="raw")
    with pytest.raises(TypeError):
        pki.verify_ecdsa_p384(b"key", raw, msg, encoding="raw")  # type: ignore[arg-type]


def test_der_value_helpers() -> None:
    assert pki.der_integer(b"\x02\x01\x73") == 115
    assert pki.der_integer(b"\x02\x02\x00\xd9") == 217
    assert pki.der_string(b"\x16\x08Milan-B0") == "Milan-B0"
    assert pki.der_octet_string(b"\x04\x02ab") == b"ab"
    for bad in (b"\x02\x02\x00\x01", b"\x02\x00", b"\x02\x01\x01\x00", b"\x04\x01a", b"\x02\x01\xff"):
        with pytest.raises(CertificateChainError):
            pki.der_integer(bad)
    with pytest.raises(CertificateChainError):
        pki.der_string(b"\x04\x01a")
    with pytest.raises(CertificateChainError):
        pki.der_octet_string(b"\x16\x01a")


def test_chain_cache() -> None:
    chain, root = _chain(1)
    cache = pki.ChainCache(max_chains=2)
    pki.verify_chain(chain, root, now=NOW, cache=cache)
    pki.verify_chain(chain, root, now=NOW, cache=cache)
    assert (cache.hits, cache.misses, len(cache)) == (1, 1, 1)
    # Different context, different entry.
    pki.verify_chain(chain, root, now=NOW, cache=cache, context="other")
    assert len(cache) == 2
    # LRU bound.
    chain2, root2 = _chain(1)
    pki.verify_chain(chain2, root2, now=NOW, cache=cache)
    assert len(cache) == 2
    # Outside the window a hit is not possible.
    with pytest.raises(CertificateExpiredError):
        pki.verify_chain(chain2, root2, now=datetime(2031, 1, 1, tzinfo=UTC), cache=cache)
    # Failures are never stored.
    _, other_root = _chain(1)
    for _ in range(2):
        with pytest.raises(UntrustedRootError):
            pki.verify_chain(chain, other_root, now=NOW, cache=cache)
    assert pki.ChainCache.key(chain, other_root) not in cache._chains
    cache.clear()
    assert len(cache) == 0
    with pytest.raises(ValueError, match="positive"):
        pki.ChainCache(max_chains=0)


def test_cache_memoizes_certificates() -> None:
    c, _ = _key_cert()
    der = c.public_bytes(serialization.Encoding.DER)
    cache = pki.ChainCache(max_certificates=1)
    assert cache.certificate(der) is cache.certificate(der)
    c2, _ = _key_cert()
    cache.certificate(c2.public_bytes(serialization.Encoding.DER))
    assert cache.certificate(der) is not None


def test_nitro_factory_chain_parses() -> None:
    n = make_nitro()
    root = _p(n.root)
    inter = _p(n.inter)
    leaf_c, _ = n.leaf()
    pki.verify_chain([_p(leaf_c), inter], root, now=NOW)


def _build_crl(
    issuer_key: object, issuer: x509.Name, revoked: list[int], *, critical_entry: bool = False
) -> bytes:
    b = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(issuer)
        .last_update(NOW - timedelta(days=1))
        .next_update(NOW + timedelta(days=1))
    )
    for serial in revoked:
        rb = x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(NOW - timedelta(days=1))
        if critical_entry:
            rb = rb.add_extension(
                x509.UnrecognizedExtension(x509.ObjectIdentifier("1.2.3.4"), b"\x05\x00"), True
            )
        b = b.add_revoked_certificate(rb.build())
    b = b.add_extension(x509.CRLNumber(7), critical=False)
    return b.sign(issuer_key, hashes.SHA384()).public_bytes(serialization.Encoding.DER)  # type: ignore[arg-type]


def test_crl_parse_check_and_revocation() -> None:
    root_c, root_k = _key_cert(subject="root", issuer_name="root", ca=True)
    leaf_c, _ = _key_cert(subject="leaf", issuer_name="root", issuer_key=root_k)
    root, leaf = _p(root_c), _p(leaf_c)
    crl = pki.parse_crl(_build_crl(root_k, root_c.subject, [1, 2, leaf.serial]))
    assert crl.revoked_serials == {1, 2, leaf.serial}
    pki.check_crl(crl, root, NOW)
    with pytest.raises(CertificateRevokedError):
        pki.check_not_revoked(crl, leaf)
    clean = pki.parse_crl(_build_crl(root_k, root_c.subject, [1]))
    pki.check_not_revoked(clean, leaf)
    with pytest.raises(CollateralError):
        pki.check_crl(clean, root, NOW + timedelta(days=2))
    with pytest.raises(CollateralError):
        pki.check_crl(clean, root, NOW - timedelta(days=2))
    _, other_k = _key_cert(subject="root", issuer_name="root", ca=True)
    with pytest.raises(CollateralError):
        pki.check_crl(pki.parse_crl(_build_crl(other_k, root_c.subject, [])), root, NOW)
    with pytest.raises(CollateralError):
        pki.parse_crl(_build_crl(root_k, root_c.subject, [5], critical_entry=True))
    with pytest.raises(ValueError, match="scope"):
        pki.check_not_revoked(crl, dataclasses.replace(leaf, issuer=b"\x30\x00"))


@settings(max_examples=200, deadline=500, database=None)
@given(st.data())
def test_crl_parser_fuzz(data: st.DataObject) -> None:
    base = bytearray(_FUZZ_CRL)
    for _ in range(data.draw(st.integers(1, 6))):
        i = data.draw(st.integers(0, len(base) - 1))
        base[i] = data.draw(st.integers(0, 255))
    if data.draw(st.booleans()):
        del base[data.draw(st.integers(0, len(base) - 1)) :]
    with contextlib.suppress(EnclaviaError):
        pki.parse_crl(bytes(base))


_FUZZ_ROOT_K = ec.generate_private_key(ec.SECP384R1())
_FUZZ_CRL = _build_crl(_FUZZ_ROOT_K, x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "root")]), [1, 2, 3])
