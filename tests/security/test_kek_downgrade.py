"""KEK downgrade through the host relay (issue 14): after ``keks/rag`` is rotated to v2, the host fetches v1
with the enclave's own token (or replays a release it captured) and hands it to the enclave. The broker's
release states the current version, bound into the sealed release; the enclave refuses a KEK older than
that or than one it holds, and new documents are encrypted under the rotated KEK. Real broker (SQLite and
PostgreSQL), real enclave key release; the host's part is played with the exact bytes a relay handles."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from enclavia.enclave.keyrelease import KeyRelease
from enclavia.errors import BadRequestError, DecryptionError, SecretVersionRollbackError
from enclavia.rag.blobstore import MemoryBlobStore
from enclavia.rag.keys import KeyRing, ReleasedKekSource
from tests.broker_support import Harness, db_url, make_harness, pg_schemas

__all__ = ["db_url", "pg_schemas"]

K1, K2 = b"\x01" * 32, b"\x02" * 32
RULES = "secrets:\n  - {path: keks/*, allow: [good-build]}\n"


@pytest.fixture
def h(db_url: str, tmp_path: Path) -> Iterator[Harness]:
    harness = make_harness(db_url, tmp_path, secrets_yaml=RULES)
    harness.service.put_secret("keks/rag", K1, rotate=False)
    yield harness
    harness.service.close()


def _relay(kr: KeyRelease, release: dict[str, Any]) -> bytes:
    """What the host relay sends to the enclave (INSTALL_SECRET): the broker's response, as JSON."""
    return kr.install(json.dumps(release).encode())


def test_kek_downgrade_through_the_relay_is_refused_and_new_documents_use_v2(h: Harness) -> None:
    keks = ReleasedKekSource("keks/rag")
    kr = KeyRelease(h.enclave.gateway_key, {}, kek=keks)
    captured_v1 = h.service.release("keks/rag", "Bearer " + h.attest()["token"])  # before the rotation
    assert captured_v1["current_version"] == 1
    h.service.put_secret("keks/rag", K2, rotate=True)

    token = "Bearer " + h.attest()["token"]
    v1 = h.service.release("keks/rag", token, "1")  # the host asks for the old version explicitly
    assert (v1["version"], v1["current_version"]) == (1, 2)
    with pytest.raises(SecretVersionRollbackError):
        _relay(kr, v1)
    # The statement cannot be edited or dropped on the way: it is in the sealed release's AAD.
    with pytest.raises(DecryptionError):
        _relay(kr, {**v1, "current_version": 1})
    with pytest.raises(BadRequestError):
        _relay(kr, {k: v for k, v in v1.items() if k != "current_version"})
    assert not keks.released

    _relay(kr, h.service.release("keks/rag", token))  # the latest: v2
    assert keks.current() == ("keks/rag@v2", K2)
    ring = KeyRing(MemoryBlobStore(), keks)
    assert ring.dek("doc-1") is not None and ring.kek_id == "keks/rag@v2"
    assert ring.check_unwraps("keks/rag@v2", K2) and not ring.check_unwraps("keks/rag@v1", K1)

    # Holding v2, the enclave refuses v1 however it comes: a fresh release, or a captured one that
    # said v1 was current then (sealed to an earlier key of this enclave, or replayed as is).
    with pytest.raises(SecretVersionRollbackError):
        _relay(kr, h.service.release("keks/rag", token, "1"))
    kr2 = KeyRelease(h.enclave.gateway_key, {}, kek=keks)
    with pytest.raises(SecretVersionRollbackError):
        _relay(kr2, captured_v1)
    assert keks.current() == ("keks/rag@v2", K2)
    assert kr.policy_revision == 1
