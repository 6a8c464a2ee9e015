"""Key stores: the file store (dev) and PKCS#11 on SoftHSM2, where the root key never leaves the token."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from enclavia.broker.keystore import FileKeyStore, Pkcs11KeyStore, Pkcs11Uri, open_keystore
from enclavia.broker.service import BrokerConfig, BrokerService
from enclavia.errors import DecryptionError, StoreUnavailableError
from tests.broker_support import ADMIN_TOKEN, Harness, make_enclave, policy_text

SOFTHSM_MODULES = ("/usr/lib/softhsm/libsofthsm2.so", "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so")
PIN = "5678"


def test_file_keystore_wraps_with_context(tmp_path: Path) -> None:
    ks = FileKeyStore(tmp_path / "k" / "root.key")
    assert (tmp_path / "k" / "root.key").stat().st_mode & 0o777 == 0o600
    blob = ks.wrap(b"d" * 32, b"ctx-1")
    assert ks.unwrap(blob, b"ctx-1") == b"d" * 32
    with pytest.raises(DecryptionError):
        ks.unwrap(blob, b"ctx-2")
    # Re-opening reads the same key; a missing file without create is unavailable, not a new key.
    assert FileKeyStore(tmp_path / "k" / "root.key").unwrap(blob, b"ctx-1") == b"d" * 32
    with pytest.raises(StoreUnavailableError):
        FileKeyStore(tmp_path / "missing.key", create=False)
    assert "redacted" in repr(ks)


def test_pkcs11_uri_parsing(tmp_path: Path) -> None:
    pin_file = tmp_path / "pin"
    pin_file.write_text("1234\n")
    uri = Pkcs11Uri.parse(f"pkcs11:token=enc;object=root?module-path=/x.so&pin-source=file:{pin_file}")
    assert (uri.token_label, uri.object_label, uri.module_path, uri.pin) == ("enc", "root", "/x.so", "1234")
    for bad in (
        "pkcs11:object=x?pin-value=1",
        "file:/x",
        "pkcs11:token=a;slot=1?pin-value=1",
        "pkcs11:token=a",
    ):
        with pytest.raises(ValueError):
            env = os.environ.pop("ENCLAVIA_PKCS11_PIN", None)
            try:
                Pkcs11Uri.parse(bad)
            finally:
                if env is not None:
                    os.environ["ENCLAVIA_PKCS11_PIN"] = env


def _softhsm_module() -> str:
    util = shutil.which("softhsm2-util")
    module = next((m for m in SOFTHSM_MODULES if Path(m).exists()), None)
    if util is None or module is None:
        pytest.fail(
            "SoftHSM2 is required for the PKCS#11 key-store tests and is not installed: "
            "`apt-get install -y softhsm2` (.ci/run does this)"
        )
    return module


@pytest.fixture(scope="module")
def softhsm_token(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One SoftHSM2 token per test module, in a temporary SOFTHSM2_CONF. SoftHSM2 reads its configuration
    once per process (C_Initialize), so every test in this process shares it; tests use their own objects."""
    module = _softhsm_module()
    base = tmp_path_factory.mktemp("softhsm")
    tokens = base / "tokens"
    tokens.mkdir()
    conf = base / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {tokens}\nobjectstore.backend = file\nlog.level = ERROR\n")
    previous = os.environ.get("SOFTHSM2_CONF")
    os.environ["SOFTHSM2_CONF"] = str(conf)
    label = "enclavia-test"
    subprocess.run(
        ["softhsm2-util", "--init-token", "--free", "--label", label, "--so-pin", "1234", "--pin", PIN],
        check=True,
        capture_output=True,
    )
    yield f"pkcs11:token={label};object={{object}}?module-path={module}&pin-value={PIN}"
    if previous is None:
        os.environ.pop("SOFTHSM2_CONF", None)
    else:
        os.environ["SOFTHSM2_CONF"] = previous


@pytest.fixture
def token_uri(softhsm_token: str, request: pytest.FixtureRequest) -> str:
    return softhsm_token.replace("{object}", "root-" + request.node.name[:40].replace("[", "-").strip("]"))


def test_pkcs11_root_key_is_non_extractable_and_wraps_inside_the_token(token_uri: str) -> None:
    import pkcs11
    from pkcs11 import Attribute, KeyType, Mechanism, ObjectClass

    ks = Pkcs11KeyStore(token_uri)
    attrs = ks.key_attributes
    assert attrs == {
        "extractable": False,
        "sensitive": True,
        "never_extractable": True,
        "always_sensitive": True,
        "token": True,
    }
    blob = ks.wrap(b"k" * 32, b"context")
    assert blob[:1] == b"\x01" and len(blob) == 1 + 12 + 32 + 16
    assert ks.unwrap(blob, b"context") == b"k" * 32
    with pytest.raises(DecryptionError):
        ks.unwrap(blob, b"other context")
    with pytest.raises(DecryptionError):
        ks.unwrap(blob[:-1] + bytes([blob[-1] ^ 1]), b"context")

    # The key value cannot be read, and the token refuses to wrap (export) it under another key.
    session = ks._session
    root = session.get_key(
        object_class=ObjectClass.SECRET_KEY, key_type=KeyType.AES, label=ks.uri.object_label
    )
    with pytest.raises(pkcs11.exceptions.AttributeSensitive):
        _ = root[Attribute.VALUE]
    exporter = session.generate_key(KeyType.AES, 256, template={Attribute.WRAP: True, Attribute.TOKEN: False})
    with pytest.raises(pkcs11.PKCS11Error):
        exporter.wrap_key(root, mechanism=Mechanism.AES_KEY_WRAP)
    ks.close()

    # A second store on the same token finds the same key (created once, never regenerated).
    again = open_keystore(token_uri, create=False)
    assert again.unwrap(blob, b"context") == b"k" * 32
    again.close()


def test_broker_releases_with_a_pkcs11_root_key(token_uri: str, tmp_path: Path) -> None:
    from enclavia.crypto.signing import SigningKey

    platform = SigningKey.generate()
    enclave = make_enclave(platform)
    rules = "secrets:\n  - path: models/*\n    allow: [good-build]\n"
    config = BrokerConfig(
        db_url=f"sqlite:///{tmp_path / 'broker.db'}",
        keystore=token_uri,
        admin_token=ADMIN_TOKEN,
        bootstrap_policy=policy_text(platform, enclave.manifest_digest, secrets_yaml=rules),
    )
    service = BrokerService(config)
    assert service.start()
    h = Harness(service=service, clock=None, platform=platform, enclave=enclave, db_url=config.db_url)  # type: ignore[arg-type]
    service.put_secret("models/m1", b"s" * 32, rotate=False)
    out = service.release("models/m1", "Bearer " + h.attest()["token"])
    assert h.open(out) == b"s" * 32
    service.close()
    # The database alone is useless: with another root key the broker refuses to start (503), not guesses.
    other = BrokerService(BrokerConfig(db_url=config.db_url, keystore=f"file:{tmp_path / 'other.key'}"))
    assert not other.start()
    other.close()
