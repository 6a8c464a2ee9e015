"""Helpers for the attack suite: a simulated enclave in-process, bundles an attacker rewrites, and an httpx
transport that puts that enclave behind the real client SDK without any process or socket."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlparse

import httpx

from enclavia.attestation.binding import compute_report_data
from enclavia.attestation.bundle import AttestationBundle
from enclavia.attestation.claims import Tee
from enclavia.attestation.manifest import ImageManifest
from enclavia.crypto.hpke import DEFAULT_SUITE, KemPrivateKey
from enclavia.crypto.ohttp import Gateway, GatewayKey, KeyConfig
from enclavia.crypto.signing import SigningKey
from enclavia.enclave.core import Enclave
from enclavia.enclave.routes import InnerApp
from enclavia.policy.document import Policy, parse_policy
from enclavia.tee.simulated import SimulatedAttester

T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)

# Wycheproof x25519_test.json, flag ZeroSharedSecret: public keys of small order (the zero point, 1, the
# order-8 points and their non-canonical encodings). Loaded from tests/assets/vectors by the tests that need
# all of them; these two stand in where a constant is enough.
ZERO_POINT = bytes(32)
ORDER_8_POINT = bytes.fromhex("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800")


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def manifest(tag: str = "good") -> ImageManifest:
    return ImageManifest("0.1.0", {"enclavia/__init__.py": "00" * 32}, (), {}, {"tee": "simulated", "b": tag})


@dataclass
class SimWorld:
    """A pinned simulated platform, an enclave measured by ``manifest()``, and the dev policy for it."""

    clock: Callable[[], float] = field(default=T0.timestamp)
    platform: SigningKey = field(default_factory=SigningKey.generate)

    def __post_init__(self) -> None:
        self.enclave = self.make_enclave()

    def make_enclave(self, *, debug: bool = False, m: ImageManifest | None = None) -> Enclave:
        m = m or manifest()
        attester = SimulatedAttester(
            platform_key=self.platform, measurement=m.digest(), debug=debug, clock=self.clock
        )
        return Enclave(attester, m, InnerApp(models={}))

    def policy(self, *, profile: str = "dev", requirements: str = "{allow_debug: false}") -> Policy:
        return parse_policy(
            f"policy_id: attacks\nrevision: 1\nprofile: {profile}\nrequirements: {requirements}\n"
            f"trust: {{simulated_platform_keys: ['{self.platform.public_bytes.hex()}']}}\n"
            "reference_values:\n  simulated:\n"
            f"    - {{name: good, measurement: '{manifest().digest().hex()}'}}\n"
        )

    def genuine_evidence(
        self, nonce: bytes, key_config: bytes, signing_key: bytes, m: ImageManifest | None = None
    ) -> bytes:
        """Evidence the genuine platform signs for whatever report_data it is asked to bind."""
        m = m or manifest()
        attester = SimulatedAttester(platform_key=self.platform, measurement=m.digest(), clock=self.clock)
        return attester.attest(compute_report_data(nonce, key_config, signing_key, m.digest())).evidence


def rewrite(bundle: AttestationBundle, **fields: Any) -> bytes:
    """The bundle's JSON with some fields replaced (what a host in the middle can do)."""
    doc = bundle.to_json()
    doc.update(fields)
    return json.dumps(doc).encode()


def gateway_key(symmetric: tuple[tuple[int, int], ...], key_id: int = 9) -> GatewayKey:
    sk = KemPrivateKey.generate()
    return GatewayKey(KeyConfig(key_id, DEFAULT_SUITE.kem_id, sk.public_bytes(), symmetric), sk)


def install_key(enclave: Enclave, key: GatewayKey) -> None:
    """Make ``enclave`` offer (and attest) ``key`` instead of the one it generated."""
    enclave.gateway_key = key
    enclave.key_config = key.config.encode()
    enclave._gateway = Gateway([key])


class Loopback:
    """An httpx transport that answers /v1/attestation and /v1/gateway from an in-process Enclave."""

    def __init__(self, enclave: Enclave) -> None:
        self.enclave = enclave
        self.gateway_bodies: list[bytes] = []
        self.attestations = 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        url = urlparse(str(request.url))
        if url.path == "/v1/attestation":
            self.attestations += 1
            nonce = bytes.fromhex(parse_qs(url.query)["nonce"][0])
            return httpx.Response(200, content=self.enclave.attestation_bundle(nonce).encode())
        if url.path == "/v1/gateway":
            body = request.read()
            self.gateway_bodies.append(body)
            if request.headers.get("content-type") != "message/ohttp-req":  # chunked: recorded only
                problem = {"type": "about:blank", "code": "enclave.unavailable", "status": 503}
                return httpx.Response(503, json=problem, headers={"content-type": "application/problem+json"})
            return httpx.Response(200, content=self.enclave.handle_gateway(body))
        return httpx.Response(404)

    def client(self) -> httpx.Client:
        return httpx.Client(transport=httpx.MockTransport(self))


def sim_bundle_for(
    world: SimWorld, nonce: bytes, key_config: bytes, signing_key: bytes, m: ImageManifest | None = None
) -> AttestationBundle:
    m = m or manifest()
    return AttestationBundle(
        tee=Tee.SIMULATED,
        evidence=world.genuine_evidence(nonce, key_config, signing_key, m),
        certificates=(),
        aux=None,
        collateral=None,
        key_config=key_config,
        signing_public_key=signing_key,
        manifest=m,
        nonce=nonce,
    )
