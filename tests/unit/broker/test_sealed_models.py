"""Sealed model artifacts and the enclave's install of released keys (no processes, no broker)."""

from __future__ import annotations

import base64
import json
import shutil
import struct
from pathlib import Path

import pytest

from enclavia.crypto import aead
from enclavia.crypto.kbs import release_aad, seal_secret
from enclavia.enclave.boot import load_models
from enclavia.enclave.keyrelease import KeyRelease
from enclavia.enclave.sealed import MAGIC, SealedModel, open_artifact, parse_sealed, seal_artifact
from enclavia.errors import BadRequestError, DecryptionError, SecretsUnavailableError
from enclavia.inference.linear import ArtifactError, LinearClassifier
from tests.support import ensure_model


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    src = ensure_model() / "clinical-risk.json"
    dst = tmp_path / "models"
    dst.mkdir()
    shutil.copy(src, dst / "clinical-risk.json")
    return dst


def _seal(model_dir: Path, version: int = 1) -> bytes:
    dek = aead.generate_key()
    plain = (model_dir / "clinical-risk.json").read_bytes()
    (model_dir / "clinical-risk.json.sealed").write_bytes(seal_artifact(plain, "clinical-risk", dek, version))
    return dek


def test_seal_round_trip_and_header_binding(model_dir: Path) -> None:
    plain = (model_dir / "clinical-risk.json").read_bytes()
    dek = _seal(model_dir)
    data = (model_dir / "clinical-risk.json.sealed").read_bytes()
    header, blob = parse_sealed(data)
    assert header.model_id == "clinical-risk" and header.secret_path == "models/clinical-risk"
    assert header.sha256 == LinearClassifier(plain).digest and header.secret_version == 1
    assert plain not in data
    assert open_artifact(header, blob, dek) == plain
    with pytest.raises(DecryptionError):
        open_artifact(header, blob, aead.generate_key())
    # A header that lies about the digest (to change the measurement) does not open.
    lying = type(header)(header.model_id, "0" * 64, header.secret_path, 1, header.size)
    with pytest.raises(DecryptionError):
        open_artifact(lying, blob, dek)
    for bad in (b"", b"XXXXXXXX" + data[8:], MAGIC + struct.pack(">I", 99999) + data[12:]):
        with pytest.raises(ArtifactError):
            parse_sealed(bad)


def test_plaintext_beside_a_sealed_copy_is_never_loaded(model_dir: Path) -> None:
    plain_model = LinearClassifier((model_dir / "clinical-risk.json").read_bytes())
    _seal(model_dir)
    models = load_models(model_dir)
    model = models["clinical-risk"]
    assert isinstance(model, SealedModel) and not model.unsealed
    assert model.digest == plain_model.digest  # the manifest measures the model before it is opened
    with pytest.raises(SecretsUnavailableError):
        model.predict({"x": 1.0})
    assert model.describe()["status"] == "sealed"


def test_key_release_install_checks_path_version_and_associated_data(model_dir: Path) -> None:
    from enclavia.crypto.ohttp import GatewayKey

    dek = _seal(model_dir, version=3)
    models = load_models(model_dir)
    key = GatewayKey.generate(7)
    kr = KeyRelease(key, models)
    assert kr.needed() == [{"path": "models/clinical-risk", "version": 3}]

    def release(
        secret: bytes, path: str = "models/clinical-risk", version: int = 3, jti: str = "j" * 32
    ) -> dict:
        enc, ct = seal_secret(key.config.encode(), secret, release_aad(path, version, 5, jti))
        return {
            "path": path,
            "version": version,
            "policy_revision": 5,
            "jti": jti,
            "enc": base64.b64encode(enc).decode(),
            "ciphertext": base64.b64encode(ct).decode(),
        }

    # A release relabelled by the relay (another jti or revision than it was sealed with) does not open.
    tampered = {**release(dek), "policy_revision": 6}
    with pytest.raises(DecryptionError):
        kr.install(json.dumps(tampered).encode())
    # A secret this enclave did not ask for, or another version, is refused before opening.
    with pytest.raises(BadRequestError):
        kr.install(json.dumps(release(dek, path="models/other")).encode())
    with pytest.raises(BadRequestError):
        kr.install(json.dumps(release(dek, version=2)).encode())
    # The right path with the wrong key: the model does not decrypt and stays sealed.
    with pytest.raises(DecryptionError):
        kr.install(json.dumps(release(aead.generate_key())).encode())
    assert kr.needed()
    for junk in (b"", b"[]", b"{}", json.dumps({**release(dek), "enc": "!!"}).encode()):
        with pytest.raises(BadRequestError):
            kr.install(junk)
    out = json.loads(kr.install(json.dumps(release(dek)).encode()))
    assert out == {"installed": "models/clinical-risk", "pending": 0}
    assert kr.needed() == []
    model = models["clinical-risk"]
    assert model.predict  # now serves
    assert model.describe()["id"] == "clinical-risk" and "status" not in model.describe()
