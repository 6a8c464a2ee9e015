"""The enclave's side of key release: which secrets it still needs, and installing released ones.

The enclave stays passive behind its one socket; the host drives the broker protocol as a relay:

1. ``BROKER_ATTEST`` (body: the broker's challenge nonce, hex) -> ``{"bundle": <attestation bundle bound to
   that nonce>, "secrets": [{"path", "version"}, ...]}`` (the secrets still pending; ``version`` is null for
   the document store's KEK: the broker resolves it to the latest version and the release names it).
2. ``INSTALL_SECRET`` (body: the broker's release response, JSON) -> ``{"installed": path, "pending": n}``.

A release is opened with the gateway's HPKE private key; the associated data is rebuilt from the response
fields (path, version, policy revision, token id) and the path and version must be ones this enclave asked
for, so a relay cannot swap one secret for another. Only then is the sealed model decrypted, in memory, or
the KEK (exactly 32 bytes) installed into the document store's ``ReleasedKekSource``.

Version floor (KEKs): each release states the newest live version of its path (``current_version``, in
the associated data, so it opens only as the broker sealed it). A KEK older than that, or older than one
this enclave already holds, is refused (``SecretVersionRollbackError``): a relay that fetches v1 with the
enclave's token after a rotation to v2, or replays an old release, cannot make new documents use the old
KEK. A sealed model is installed once, at the version its header names.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Mapping
from typing import Any

from enclavia.crypto.kbs import open_secret, release_aad
from enclavia.crypto.ohttp import GatewayKey
from enclavia.enclave.sealed import SealedModel
from enclavia.errors import BadRequestError, DecryptionError, EnclaviaError, SecretVersionRollbackError
from enclavia.inference.linear import ArtifactError, LinearClassifier
from enclavia.rag.keys import ReleasedKekSource

MAX_RELEASE_BODY = 256 << 10
_FIELDS = {"path", "version", "policy_revision", "jti", "enc", "ciphertext"}
_OPTIONAL = {"current_version"}


def _unb64(value: object) -> bytes:
    if not isinstance(value, str):
        raise BadRequestError("release field is not base64")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise BadRequestError("release field is not base64") from None


class KeyRelease:
    def __init__(
        self,
        gateway_key: GatewayKey,
        models: Mapping[str, LinearClassifier],
        log: Callable[..., Any] | None = None,
        kek: ReleasedKekSource | None = None,
    ) -> None:
        self._key = gateway_key
        self._sealed = {m.secret_path: m for m in models.values() if isinstance(m, SealedModel)}
        self._kek = kek
        self._log = log or (lambda *a, **k: None)
        # Broker policy revision of the last secret installed (receipts name it; None until a release).
        self.policy_revision: int | None = None

    def needed(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = [
            {"path": path, "version": m.header.secret_version}
            for path, m in sorted(self._sealed.items())
            if not m.unsealed
        ]
        if self._kek is not None and not self._kek.released:
            out.append({"path": self._kek.path, "version": None})  # latest, as the broker resolves it
        return out

    def broker_response(self, bundle_json: Mapping[str, Any]) -> bytes:
        return json.dumps(
            {"bundle": dict(bundle_json), "secrets": self.needed()}, separators=(",", ":")
        ).encode()

    def install(self, body: bytes) -> bytes:
        try:
            path, version = self._install(body)
        except EnclaviaError as err:
            self._log("enclave.secret", outcome="error", error_code=err.code, pending=len(self.needed()))
            raise
        pending = len(self.needed())
        self._log("enclave.secret", outcome="installed", version=version, pending=pending)
        return json.dumps({"installed": path, "pending": pending}, separators=(",", ":")).encode()

    def _install(self, body: bytes) -> tuple[str, int]:
        if len(body) > MAX_RELEASE_BODY:
            raise BadRequestError("release too large")
        try:
            doc = json.loads(body)
        except (ValueError, UnicodeDecodeError, RecursionError):
            raise BadRequestError("release is not JSON") from None
        if not isinstance(doc, dict) or not _FIELDS <= set(doc) <= _FIELDS | _OPTIONAL:
            raise BadRequestError("release has the wrong shape")
        path, version, revision, jti = doc["path"], doc["version"], doc["policy_revision"], doc["jti"]
        current = doc.get("current_version")
        if not isinstance(path, str) or not isinstance(jti, str):
            raise BadRequestError("release has the wrong shape")
        ints = (version, revision) if current is None else (version, revision, current)
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in ints):
            raise BadRequestError("release has the wrong shape")
        model = self._sealed.get(path)
        is_kek = model is None and self._kek is not None and path == self._kek.path and version > 0
        if not is_kek and (model is None or model.unsealed or version != model.header.secret_version):
            raise BadRequestError("this enclave did not ask for that secret")
        if is_kek:
            assert self._kek is not None
            self._check_kek_floor(version, current)
        dek = open_secret(
            self._key.private_key,
            _unb64(doc["enc"]),
            _unb64(doc["ciphertext"]),
            release_aad(path, version, revision, jti, current),
        )
        if is_kek:
            assert self._kek is not None
            self._kek.install(version, dek)
        else:
            assert model is not None
            try:
                model.unseal(dek)
            except ArtifactError:
                raise DecryptionError("sealed model does not load") from None
        # The newest revision this enclave's secrets were released under: a replayed older release
        # cannot make its receipts name an older policy.
        self.policy_revision = max(self.policy_revision or 0, revision)
        return path, version

    def _check_kek_floor(self, version: int, current: int | None) -> None:
        """A KEK must come with the broker's statement of the current version (bound into the sealed
        release, checked when it opens), and be neither older than that nor than one already held."""
        assert self._kek is not None
        if current is None:
            raise BadRequestError("a KEK release must state the current version")
        held = self._kek.highest_version
        if version < current or (held is not None and version < held):
            raise SecretVersionRollbackError()
