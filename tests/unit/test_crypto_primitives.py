"""Unit tests for enclavia.crypto.hpke edge cases and enclavia.crypto.aead."""

from __future__ import annotations

import pickle

import pytest

from enclavia.crypto import aead
from enclavia.crypto.hpke import (
    DEFAULT_SUITE,
    KemPrivateKey,
    Suite,
    check_suite,
    setup_base_recipient,
    setup_base_sender,
)
from enclavia.errors import CryptoError, DecryptionError, InvalidPublicKeyError, UnsupportedSuiteError


@pytest.mark.parametrize(
    "suite",
    [Suite(0x21, 1, 2), Suite(0x20, 2, 2), Suite(0x20, 1, 0), Suite(0x20, 1, 0xFFFF), Suite(0x10, 1, 1)],
)
def test_unsupported_suites(suite: Suite) -> None:
    with pytest.raises(UnsupportedSuiteError):
        check_suite(suite)
    with pytest.raises(UnsupportedSuiteError):
        setup_base_sender(suite, KemPrivateKey.generate().public_bytes(), b"")
    with pytest.raises(UnsupportedSuiteError):
        setup_base_recipient(suite, KemPrivateKey.generate().public_bytes(), KemPrivateKey.generate(), b"")


def test_default_suite() -> None:
    assert Suite(0x0020, 0x0001, 0x0002) == DEFAULT_SUITE
    check_suite(DEFAULT_SUITE)


def test_private_key_never_in_repr_and_not_picklable() -> None:
    sk = KemPrivateKey.generate()
    assert sk.private_bytes().hex() not in repr(sk)
    assert sk.public_bytes().hex() in repr(sk)
    with pytest.raises(TypeError):
        pickle.dumps(sk)


def test_key_lengths() -> None:
    with pytest.raises(ValueError):
        KemPrivateKey.from_bytes(bytes(31))
    with pytest.raises(ValueError):
        KemPrivateKey.derive(b"short")
    sk = KemPrivateKey.generate()
    assert KemPrivateKey.from_bytes(sk.private_bytes()).public_bytes() == sk.public_bytes()


def test_low_order_recipient_key_refused_at_sender() -> None:
    with pytest.raises(InvalidPublicKeyError):
        setup_base_sender(DEFAULT_SUITE, bytes(32), b"")
    with pytest.raises(InvalidPublicKeyError):
        setup_base_sender(DEFAULT_SUITE, bytes(31), b"")


def test_ephemeral_options_are_exclusive() -> None:
    with pytest.raises(ValueError):
        setup_base_sender(
            DEFAULT_SUITE,
            KemPrivateKey.generate().public_bytes(),
            b"",
            ikm_e=bytes(32),
            sk_e=KemPrivateKey.generate(),
        )


def test_fresh_ephemeral_each_time() -> None:
    pk = KemPrivateKey.generate().public_bytes()
    assert setup_base_sender(DEFAULT_SUITE, pk, b"")[0] != setup_base_sender(DEFAULT_SUITE, pk, b"")[0]


def test_sequence_exhaustion_is_refused() -> None:
    sk = KemPrivateKey.generate()
    enc, sender = setup_base_sender(DEFAULT_SUITE, sk.public_bytes(), b"")
    recipient = setup_base_recipient(DEFAULT_SUITE, enc, sk, b"")
    last = (1 << 96) - 2
    sender._seq = last  # white-box: walking 2**96 messages is not an option
    recipient._seq = last
    assert recipient.open(b"", sender.seal(b"", b"x")) == b"x"
    with pytest.raises(CryptoError):
        sender.seal(b"", b"x")
    with pytest.raises(CryptoError):
        recipient.open(b"", bytes(17))


def test_export_bounds() -> None:
    _, ctx = setup_base_sender(DEFAULT_SUITE, KemPrivateKey.generate().public_bytes(), b"")
    assert len(ctx.export(b"", 255 * 32)) == 255 * 32
    for bad in (0, 255 * 32 + 1):
        with pytest.raises(ValueError):
            ctx.export(b"", bad)


def test_aead_round_trip_and_failures() -> None:
    key = aead.generate_key()
    assert len(key) == 32
    blob = aead.seal(key, b"secret", b"field:ssn")
    assert len(blob) == len(b"secret") + aead.OVERHEAD
    assert aead.open_(key, blob, b"field:ssn") == b"secret"
    assert aead.seal(key, b"secret", b"field:ssn") != blob  # fresh nonce
    for bad_key, bad_blob, bad_aad in [
        (key, blob, b"field:other"),
        (aead.generate_key(), blob, b"field:ssn"),
        (key, blob[:-1] + bytes([blob[-1] ^ 1]), b"field:ssn"),
        (key, blob[:27], b"field:ssn"),
        (key, b"", b"field:ssn"),
    ]:
        with pytest.raises(DecryptionError):
            aead.open_(bad_key, bad_blob, bad_aad)
    with pytest.raises(ValueError):
        aead.seal(bytes(16), b"", b"")
