"""Fuzz targets: one function per parser, taking untrusted bytes, raising only what the parser documents.

Each target feeds its input to a parser that sits on a trust boundary and lets through only the
exceptions that parser documents: subclasses of ``EnclaviaError`` (the one exception tree), plus
``channel.ChannelError`` for the host-enclave framing (the host maps it to ``EnclaveUnavailableError``).
Anything else escaping is a bug. The hypothesis tests (test_fuzz_targets.py) and the corpus replay
(test_corpus_replay.py) both drive these functions; tests/fuzz/make_corpus.py writes the seed corpus.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from typing import Any

from enclavia import channel
from enclavia.errors import EnclaviaError

# One fixed time for everything time-dependent, so replays are deterministic.
AT = datetime(2026, 1, 15, tzinfo=UTC)
ALLOWED: tuple[type[BaseException], ...] = (EnclaviaError,)


@dataclass(frozen=True)
class Target:
    name: str
    run: Callable[[bytes], object]
    allowed: tuple[type[BaseException], ...] = ALLOWED


def run_target(target: Target, data: bytes) -> bool:
    """True when the parser accepted ``data``; False when it refused with an allowed exception."""
    try:
        target.run(data)
    except target.allowed:
        return False
    return True


# -- shared fixtures (built once per process) ----------------------------------------------------


@cache
def gateway_key() -> Any:
    """A fixed gateway key, so that committed requests sealed to it open on every replay."""
    from enclavia.crypto.hpke import DEFAULT_SUITE, KemPrivateKey
    from enclavia.crypto.ohttp import GatewayKey, KeyConfig

    sk = KemPrivateKey.from_bytes(b"\x22" * 32)
    suite = ((DEFAULT_SUITE.kdf_id, DEFAULT_SUITE.aead_id),)
    return GatewayKey(KeyConfig(7, DEFAULT_SUITE.kem_id, sk.public_bytes(), suite), sk)


@cache
def sim_world() -> Any:
    """A simulated enclave, the dev policy that trusts it, and a bundle it answered for NONCE."""
    from enclavia.attestation.manifest import ImageManifest
    from enclavia.crypto.signing import SigningKey
    from enclavia.enclave.core import Enclave
    from enclavia.enclave.routes import InnerApp
    from enclavia.policy.document import parse_policy
    from enclavia.tee.simulated import SimulatedAttester

    platform = SigningKey.from_private_bytes(bytes(range(32)))
    manifest = ImageManifest("0.1.0", {"enclavia/__init__.py": "00" * 32}, (), {}, {"tee": "simulated"})
    attester = SimulatedAttester(platform_key=platform, measurement=manifest.digest(), clock=AT.timestamp)
    enclave = Enclave(attester, manifest, InnerApp(models={}), key_id=7)
    policy = parse_policy(
        "policy_id: fuzz\nrevision: 1\nprofile: dev\n"
        f"trust: {{simulated_platform_keys: ['{platform.public_bytes.hex()}']}}\n"
        f"reference_values:\n  simulated:\n    - {{name: b, measurement: '{manifest.digest().hex()}'}}\n"
    )
    return enclave, policy


NONCE = bytes(range(32))


# -- crypto: OHTTP, BHTTP, chunked OHTTP ---------------------------------------------------------


def _bhttp_request(data: bytes) -> object:
    from enclavia.crypto.bhttp import decode_request

    return decode_request(data)


def _bhttp_response(data: bytes) -> object:
    from enclavia.crypto.bhttp import decode_response

    return decode_response(data)


def _bhttp_stream(data: bytes) -> object:
    from enclavia.crypto.bhttp_stream import ResponseStreamDecoder

    decoder = ResponseStreamDecoder()
    # Feed in uneven pieces, as a network would.
    events = []
    for i in range(0, len(data), 7):
        events += decoder.feed(data[i : i + 7])
    decoder.finish()
    return events


def _ohttp_key_configs(data: bytes) -> object:
    from enclavia.crypto.ohttp import KeyConfig, decode_key_configs

    # A single key configuration (as bound in the bundle), else the application/ohttp-keys list form.
    try:
        return KeyConfig.decode(data)
    except EnclaviaError:
        return decode_key_configs(data)


def _ohttp_request(data: bytes) -> object:
    from enclavia.crypto.ohttp import Gateway

    return Gateway([gateway_key()]).decapsulate_request(data)


def _chunked_request(data: bytes) -> object:
    from enclavia.crypto.chunked_ohttp import ChunkedGateway

    return ChunkedGateway([gateway_key()]).open_request(data)


# -- host <-> enclave framing --------------------------------------------------------------------


def _channel_frame(data: bytes) -> object:
    """The enclave's reader, then (for a frame that parses) the enclave's dispatcher on a real Enclave."""
    from enclavia.enclave.server import EnclaveServer
    from enclavia.observability.metrics import EnclaveMetrics

    async def read() -> channel.Frame:
        reader = asyncio.StreamReader()
        reader.feed_data(data)
        reader.feed_eof()
        return await channel.read_frame(reader, channel.MAX_TRACEPARENT)

    frame = asyncio.run(read())
    enclave, _ = sim_world()
    server = EnclaveServer(enclave, _metrics(EnclaveMetrics), lambda *a, **k: None)
    if frame.kind == channel.Kind.GATEWAY_STREAM or frame.kind == channel.Kind.METRICS:
        return frame  # streamed and metrics frames need a writer / a registry: covered elsewhere
    ok, code, _body = server._dispatch(frame)
    if not ok:
        # A refusal is a stable code, never free text from the frame.
        assert code == "request.not_found" or any(cls.code == code for cls in _error_classes()), code
    return frame


@cache
def _metrics(cls: type[Any]) -> Any:
    return cls()


@cache
def _error_classes() -> tuple[type[EnclaviaError], ...]:
    from enclavia.errors import all_error_classes

    return tuple(all_error_classes())


def _store_op(data: bytes) -> object:
    """The host's blob-store dispatcher (what the enclave sends on the services socket)."""
    import tempfile
    from pathlib import Path

    from enclavia.errors import StorageUnavailableError
    from enclavia.host.services import HostServices

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "blobs"
        services = HostServices(str(Path(tmp) / "s.sock"), root)
        ok, code, _ = services._store(data)
        # Whatever the name, nothing is written outside the blob root, and names are plain.
        written = [p for p in Path(tmp).rglob("*") if p.is_file()]
        assert all(root in p.parents and "\n" not in p.name for p in written), written
    if not ok:
        assert code in {"store.bad_name", "store.io"}, code
        raise StorageUnavailableError(code)
    return ok


# -- attestation ---------------------------------------------------------------------------------


def _bundle(data: bytes) -> object:
    """Parse and verify a bundle as the client does (dev policy trusting the fuzz enclave)."""
    from enclavia.client.verify import verify_bundle

    _, policy = sim_world()
    return verify_bundle(data, expected_nonce=NONCE, policy=policy, now=AT)


def _manifest(data: bytes) -> object:
    from enclavia.attestation.manifest import parse_manifest

    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None  # not JSON: never reaches the manifest parser (the bundle parser refuses it first)
    manifest = parse_manifest(doc)
    return manifest.digest()


def _simulated(data: bytes) -> object:
    from enclavia.attestation.platforms.simulated.abi import parse_evidence
    from enclavia.attestation.platforms.simulated.verify import verify

    parse_evidence(data)
    _, policy = sim_world()
    return verify(data, trusted_platform_keys=policy.simulated_platform_keys)


def _nitro(data: bytes) -> object:
    from enclavia.attestation.platforms.nitro import abi, verify

    abi.parse_cose_sign1(data)
    return verify.verify(data, now=datetime(2022, 9, 15, 17, 44, 24, tzinfo=UTC))


def _snp(data: bytes) -> object:
    from enclavia.attestation.platforms.sevsnp import abi

    return abi.parse_report(data)


def _snp_cert_table(data: bytes) -> object:
    from enclavia.attestation.platforms.sevsnp import abi

    return abi.parse_cert_table(data)


def _tdx(data: bytes) -> object:
    from enclavia.attestation.platforms.tdx import abi

    return abi.parse_quote(data)


def _nvidia(data: bytes) -> object:
    from enclavia.attestation.platforms.nvidia import abi

    return abi.parse_report(data)


# -- policy, tokens, transparency log, receipts, key release -------------------------------------


def _policy(data: bytes) -> object:
    from enclavia.policy.document import parse_policy

    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None  # load_policy refuses undecodable files before parsing
    return parse_policy(text)


@cache
def token_key() -> Any:
    from enclavia.crypto.signing import SigningKey

    return SigningKey.from_private_bytes(b"\x11" * 32)


def _token(data: bytes) -> object:
    from enclavia.broker import tokens

    text = data.decode("utf-8", "replace")
    return tokens.verify(
        text, public_key=token_key().public_bytes, audience="enclavia-kbs", now=1_800_000_000
    )


def _tlog_sth(data: bytes) -> object:
    from enclavia.attestation import tlog

    doc = _json_or_none(data)
    sth = tlog.parse_tree_head(doc)
    tlog.verify_tree_head(sth, token_key().public_bytes)
    return sth


def _tlog_proof(data: bytes) -> object:
    """A log entry, or an inclusion proof checked against the tree of ``leaf-0`` .. ``leaf-4`` (leaf 2)."""
    from enclavia.attestation import tlog
    from enclavia.crypto.merkle import leaf_hash, root_from_hashes, verify_consistency, verify_inclusion

    doc = _json_or_none(data)
    if isinstance(doc, dict) and "index" in doc:
        return tlog.parse_entry(doc)
    proof = tlog.parse_inclusion_proof(doc)
    hashes = [leaf_hash(f"leaf-{i}".encode()) for i in range(5)]
    root = root_from_hashes(hashes)
    # The same path read as a consistency proof: any shape of it may only be refused, with a typed error.
    with contextlib.suppress(EnclaviaError):
        verify_consistency(proof.leaf_index, proof.tree_size, hashes[2], root, proof.path)
    verify_inclusion(proof.leaf_index, proof.tree_size, hashes[2], proof.path, root)
    return proof


def _signed_release(data: bytes) -> object:
    from enclavia.attestation.release import parse_signed_release

    return parse_signed_release(data)


def _receipt(data: bytes) -> object:
    from enclavia.attestation.receipt import decode_receipt

    return decode_receipt(data)


def _json_or_none(data: bytes) -> object:
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None


def _key_release(data: bytes) -> object:
    """A broker release as the enclave installs it (INSTALL_SECRET body)."""
    from enclavia.enclave.keyrelease import KeyRelease

    return KeyRelease(gateway_key(), {}).install(data)


TARGETS: dict[str, Target] = {
    t.name: t
    for t in (
        Target("bhttp_request", _bhttp_request),
        Target("bhttp_response", _bhttp_response),
        Target("bhttp_stream", _bhttp_stream),
        Target("ohttp_key_config", _ohttp_key_configs),
        Target("ohttp_request", _ohttp_request),
        Target("chunked_ohttp_request", _chunked_request),
        Target("channel_frame", _channel_frame, (EnclaviaError, channel.ChannelError)),
        Target("store_op", _store_op),
        Target("bundle", _bundle),
        Target("manifest", _manifest),
        Target("simulated_evidence", _simulated),
        Target("nitro_cose", _nitro),
        Target("snp_report", _snp),
        Target("snp_cert_table", _snp_cert_table),
        Target("tdx_quote", _tdx),
        Target("nvidia_report", _nvidia),
        Target("policy_yaml", _policy),
        Target("broker_token", _token),
        Target("tlog_sth", _tlog_sth),
        Target("tlog_proof", _tlog_proof),
        Target("signed_release", _signed_release),
        Target("receipt", _receipt),
        Target("key_release", _key_release),
    )
}


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")
