"""The document store's KEK released by the broker: KeyRelease asks for it, checks and installs it into a
ReleasedKekSource; the KeyRing waits for it without failing at construction (no processes, no broker)."""

from __future__ import annotations

import base64
import json

import pytest

from enclavia.crypto import aead
from enclavia.crypto.kbs import release_aad, seal_secret
from enclavia.crypto.ohttp import GatewayKey
from enclavia.enclave.keyrelease import KeyRelease
from enclavia.errors import BadRequestError, DecryptionError, SecretsUnavailableError
from enclavia.rag.blobstore import MemoryBlobStore
from enclavia.rag.keys import KeyRing, ReleasedKekSource


def test_kek_release_installs_into_the_store_without_restart() -> None:
    key = GatewayKey.generate(9)
    keks = ReleasedKekSource("keks/rag")
    kr = KeyRelease(key, {}, kek=keks)
    assert kr.needed() == [{"path": "keks/rag", "version": None}]
    blobs = MemoryBlobStore()
    ring = KeyRing(blobs, keks)  # no KEK yet: constructed anyway
    with pytest.raises(SecretsUnavailableError):
        ring.dek("d-1")

    def release(secret: bytes, path: str = "keks/rag", version: int = 4) -> bytes:
        enc, ct = seal_secret(key.config.encode(), secret, release_aad(path, version, 2, "j" * 32, version))
        doc = {
            "path": path,
            "version": version,
            "policy_revision": 2,
            "jti": "j" * 32,
            "current_version": version,
        }
        doc |= {"enc": base64.b64encode(enc).decode(), "ciphertext": base64.b64encode(ct).decode()}
        return json.dumps(doc).encode()

    kek = aead.generate_key()
    with pytest.raises(BadRequestError):
        kr.install(release(kek, path="keks/other"))
    with pytest.raises(DecryptionError):  # relabelled version: the AAD no longer matches
        kr.install(release(kek).replace(b'"version": 4', b'"version": 5'))
    with pytest.raises(DecryptionError):  # not a 32-byte key
        kr.install(release(b"short"))
    assert not keks.released and kr.needed()

    assert json.loads(kr.install(release(kek))) == {"installed": "keks/rag", "pending": 0}
    assert kr.needed() == [] and kr.policy_revision == 2
    assert keks.current() == ("keks/rag@v4", kek)
    dek = ring.dek("d-1")
    assert dek is not None and ring.kek_id == "keks/rag@v4"
    assert ring.check_unwraps("keks/rag@v4", kek)
    # A later enclave holding the same released KEK opens the persisted keyring.
    again = ReleasedKekSource("keks/rag")
    again.install(4, kek)
    assert KeyRing(blobs, again).dek("d-1", create=False) == dek
