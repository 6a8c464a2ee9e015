"""The enclave: key material, attestation bundles and the OHTTP gateway. No sockets here."""

from __future__ import annotations

import secrets
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

from enclavia.attestation.binding import compute_report_data
from enclavia.attestation.bundle import AttestationBundle
from enclavia.attestation.claims import Tee
from enclavia.attestation.manifest import ImageManifest
from enclavia.crypto.bhttp import Request, Response, decode_request, encode_response
from enclavia.crypto.chunked_ohttp import ChunkedGateway
from enclavia.crypto.hpke import DEFAULT_SUITE, Suite
from enclavia.crypto.ohttp import Gateway, GatewayKey
from enclavia.crypto.signing import SigningKey
from enclavia.enclave.keyrelease import KeyRelease
from enclavia.enclave.routes import InnerApp
from enclavia.errors import ReplayedNonceError
from enclavia.rag.keys import ReleasedKekSource
from enclavia.tee.base import Attester, Evidence

NONCE_MEMORY = 65536


@dataclass
class NonceLedger:
    """Refuses a nonce it has already answered (bounded memory, oldest forgotten first)."""

    capacity: int = NONCE_MEMORY
    _seen: OrderedDict[bytes, None] = field(default_factory=OrderedDict)

    def consume(self, nonce: bytes) -> None:
        if nonce in self._seen:
            raise ReplayedNonceError()
        self._seen[nonce] = None
        if len(self._seen) > self.capacity:
            self._seen.popitem(last=False)


class Enclave:
    def __init__(
        self,
        attester: Attester,
        manifest: ImageManifest,
        app: InnerApp,
        *,
        suite: Suite = DEFAULT_SUITE,
        key_id: int | None = None,
    ) -> None:
        self.attester = attester
        self.manifest = manifest
        self.manifest_digest = manifest.digest()
        self.app = app
        self.suite = suite
        # A fresh gateway key per enclave start: a restarted enclave cannot open old requests,
        # and clients see UnknownKeyIdError and re-attest.
        self.gateway_key = GatewayKey.generate(
            key_id if key_id is not None else secrets.randbelow(256), suite
        )
        self.key_config = self.gateway_key.config.encode()
        self.signing_key = SigningKey.generate()
        self._gateway = Gateway([self.gateway_key])
        self._chunked = ChunkedGateway([self.gateway_key])
        # Sealed models wait for keys released by the broker to this gateway key (see keyrelease.py).
        keks = getattr(app.data, "keks", None)
        self.key_release = KeyRelease(
            self.gateway_key,
            app.models,
            log=app.log,
            kek=keks if isinstance(keks, ReleasedKekSource) else None,
        )
        self._nonces = NonceLedger()

    def attestation_bundle(self, nonce: bytes) -> AttestationBundle:
        self._nonces.consume(nonce)
        report_data = compute_report_data(
            nonce, self.key_config, self.signing_key.public_bytes, self.manifest_digest
        )
        ev = self._evidence(report_data, nonce)
        return AttestationBundle(
            tee=ev.tee,
            evidence=ev.evidence,
            certificates=ev.certificates,
            aux=ev.aux,
            collateral=None,
            key_config=self.key_config,
            signing_public_key=self.signing_key.public_bytes,
            manifest=self.manifest,
            nonce=nonce,
        )

    def _evidence(self, report_data: bytes, nonce: bytes) -> Evidence:
        # Nitro carries the nonce in its own signed field as well (DESIGN.md); the others bind it only
        # through report_data.
        if self.attester.tee is Tee.NITRO:
            from enclavia.tee.nitro_nsm import NitroNsmAttester

            if isinstance(self.attester, NitroNsmAttester):
                return self.attester.attest(report_data, nonce=nonce)
        return self.attester.attest(report_data)

    def handle_gateway(self, message: bytes) -> bytes:
        """Open an OHTTP request, run the inner route, seal the response. Raises CryptoError subclasses."""
        inner, ctx = self._gateway.decapsulate_request(message)
        request = decode_request(inner)
        response = self.app.handle(request)
        if _wants_receipt(request):
            response = with_receipt_header(self, request, response)
        return ctx.encapsulate_response(encode_response(response))

    def open_stream(self, message: bytes) -> Callable[[Callable[[bytes], bool]], None]:
        """Open a chunked OHTTP request and route it (raises CryptoError subclasses before anything is
        sent); return the function that produces the sealed response stream (see enclavia.enclave.stream)."""
        from enclavia.enclave.stream import open_chunked

        return open_chunked(self, self._chunked, message)

    def receipt(self, request: Request, status: int, content: bytes) -> str:
        """A signed receipt for this request and response content (enclavia.attestation.receipt)."""
        from enclavia.attestation.receipt import encode_receipt, issue_receipt

        model, model_sha256 = self.app.model_for(request.path)
        return encode_receipt(
            issue_receipt(
                self.signing_key,
                request_content=request.content,
                response_content=content,
                route=request.path,
                status=status,
                measurement=self.manifest_digest,
                model=model,
                model_sha256=model_sha256,
                policy_revision=self.key_release.policy_revision,
            )
        )


def _wants_receipt(request: Request) -> bool:
    from enclavia.attestation.receipt import REQUEST_HEADER

    return any(k == REQUEST_HEADER for k, _ in request.headers)


def with_receipt_header(enclave: Enclave, request: Request, response: Response) -> Response:
    from enclavia.attestation.receipt import HEADER

    receipt = enclave.receipt(request, response.status, response.content)
    return Response(
        status=response.status,
        headers=(*response.headers, (HEADER, receipt)),
        content=response.content,
        trailers=response.trailers,
    )
