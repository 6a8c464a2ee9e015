"""Boot the enclave: harden the process, load models, build the manifest, choose the attester."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from enclavia import launch
from enclavia.attestation.claims import Tee
from enclavia.attestation.manifest import ImageManifest
from enclavia.crypto.hpke import DEFAULT_SUITE, Suite
from enclavia.enclave.core import Enclave
from enclavia.enclave.image import Records, build_manifest
from enclavia.enclave.routes import InnerApp
from enclavia.enclave.sealed import SUFFIX as SEALED_SUFFIX
from enclavia.enclave.sealed import load_sealed_models
from enclavia.errors import MeasuredInputChangedError
from enclavia.inference.linear import LinearClassifier
from enclavia.observability.metrics import EnclaveMetrics
from enclavia.tee.base import Attester
from enclavia.tee.simulated import SimulatedAttester, load_platform_key

if TYPE_CHECKING:
    from enclavia.protect.classification import Classification

CHAT_CTX = 2048


@dataclass(frozen=True)
class EnclaveConfig:
    model_dir: Path
    sim_dir: Path
    tee: str = "simulated"
    suite: Suite = DEFAULT_SUITE
    max_request_bytes: int = 1 << 20
    egress: tuple[str, ...] = field(default=())
    embeddings: bool = False
    # Data classification manifest (YAML): enables detection, documents and RAG; measured.
    classification: Path | None = None
    # Host blob store socket (a path: not measured; the enclave stores only ciphertext through it).
    store_socket: str | None = None
    # GGUF chat model (llama.cpp): its SHA-256 is measured under its model id; the path is not.
    chat_model: Path | None = None
    chat_threads: int = 1
    # Broker secret path of the document store's KEK (keks/rag): measured; None = development KEK files.
    kek_secret: str | None = None

    def measured(self, classification: Classification | None = None) -> dict[str, Any]:
        """The part of the configuration that goes into the manifest (no paths: they vary by host).

        ``classification``: the manifest as the enclave read it (read_classification); the enclave passes the
        object it enforces, so what is measured is what is enforced. Release tooling may leave it out."""
        return {
            "tee": self.tee,
            "suite": {
                "kem_id": self.suite.kem_id,
                "kdf_id": self.suite.kdf_id,
                "aead_id": self.suite.aead_id,
            },
            "max_request_bytes": self.max_request_bytes,
            "egress": list(self.egress),
            "embeddings": self.embeddings,
            # interpreter flags, entry point and environment allow-list (checked at start: enclave.main)
            "process": launch.measured(),
            **_protect_measured(self, classification),
            **({"kek_secret": self.kek_secret} if self.kek_secret else {}),
            **({"chat": {"runtime": "llama.cpp", "n_ctx": CHAT_CTX}} if self.chat_model else {}),
        }


def _protect_measured(config: EnclaveConfig, classification: Classification | None) -> dict[str, Any]:
    if config.classification is None:
        return {}
    return {"classification": (classification or read_classification(config)).measured()}


def read_classification(config: EnclaveConfig) -> Classification:
    """The one read of the classification manifest: its bytes are parsed once, and that object is both
    measured and enforced (a host that swaps the file after this read changes nothing)."""
    from enclavia.protect.classification import load_classification

    assert config.classification is not None
    return load_classification(config.classification)


def load_models(model_dir: Path) -> dict[str, LinearClassifier]:
    models: dict[str, LinearClassifier] = {}
    for path in sorted(model_dir.glob("*.json")):
        if path.with_name(path.name + SEALED_SUFFIX).exists():
            continue  # a sealed copy is configured: never serve the plaintext beside it
        model = LinearClassifier(path.read_bytes())
        models[model.name] = model
    # Sealed artifacts: placeholders (503 until the broker releases their key), digests from their headers.
    models.update(load_sealed_models(model_dir))
    return models


def model_digests(
    config: EnclaveConfig, models: Mapping[str, LinearClassifier], used: Mapping[str, str] | None = None
) -> dict[str, str]:
    """``used``: digests of models already loaded from the very bytes they were digested from (the
    embedding model in the enclave); those are measured as they are, never by reading the files again."""
    digests = {name: m.digest for name, m in models.items()}
    if used:
        digests.update(used)
    elif config.embeddings:
        from enclavia.inference.embeddings import MODEL_ID, directory_digest, model_dir

        digests[MODEL_ID] = directory_digest(model_dir())
    if config.classification is not None:
        from enclavia.protect.detect import NER_MODEL_ID, ner_model_digest

        digests[NER_MODEL_ID] = ner_model_digest()
    if config.chat_model is not None:
        from enclavia.inference.chat import file_digest, model_id_for

        digest = file_digest(config.chat_model)
        digests[model_id_for(config.chat_model, digest)] = digest
    return digests


def manifest_for(
    config: EnclaveConfig,
    models: Mapping[str, LinearClassifier],
    root: Path | None = None,
    *,
    classification: Classification | None = None,
    records: Records | None = None,
    used: Mapping[str, str] | None = None,
) -> ImageManifest:
    """``root``: the enclavia package directory to measure (release tooling); default the installed one.
    ``classification``: the manifest object the enclave enforces (read once by read_classification)."""
    return build_manifest(model_digests(config, models, used), config.measured(classification), root, records)


def make_attester(config: EnclaveConfig, manifest_digest: bytes) -> Attester:
    """The attester for the configured TEE. Real TEEs measure the image themselves; the simulated one is
    told the manifest digest and signs it with the dev platform key."""
    if config.tee == Tee.SIMULATED:
        return SimulatedAttester(platform_key=load_platform_key(config.sim_dir), measurement=manifest_digest)
    if config.tee in (Tee.SEV_SNP, Tee.TDX):
        from enclavia.tee.configfs_tsm import ConfigfsTsmAttester

        return ConfigfsTsmAttester(tee=Tee(config.tee))
    if config.tee == Tee.NITRO:
        from enclavia.tee.nitro_nsm import NitroNsmAttester

        return NitroNsmAttester()
    raise ValueError("unknown TEE for the attester")


def build_enclave(
    config: EnclaveConfig,
    metrics: EnclaveMetrics,
    log: Any = None,
    key_id: int | None = None,
    records: Records | None = None,
) -> Enclave:
    models = load_models(config.model_dir)
    classification = read_classification(config) if config.classification is not None else None
    embedder = None
    if config.embeddings:
        from enclavia.inference.embeddings import EmbeddingModel

        embedder = EmbeddingModel()  # read once into memory, digested and loaded from those bytes
    used = {embedder.name: embedder.digest} if embedder is not None else None
    manifest = manifest_for(config, models, classification=classification, records=records, used=used)
    attester = make_attester(config, manifest.digest())
    data = None
    if classification is not None:
        from enclavia.enclave.data import build_data_api
        from enclavia.protect.detect import NER_MODEL_ID

        data = build_data_api(
            classification, config.sim_dir, config.store_socket, embedder, config.kek_secret
        )
        if data.detector.model_digest != manifest.models.get(NER_MODEL_ID):
            raise MeasuredInputChangedError("NER model changed while the enclave was starting")
    chat = None
    if config.chat_model is not None:
        from enclavia.inference.chat import ChatModel

        chat = ChatModel(config.chat_model, threads=config.chat_threads, n_ctx=CHAT_CTX)
        if manifest.models.get(chat.name) != chat.digest:
            raise MeasuredInputChangedError("chat model changed while the enclave was starting")
    usage = None
    if data is not None:
        from enclavia.enclave.usage import usage_monitor

        usage = usage_monitor(data.keks, metrics.usage, log)
    app = InnerApp(
        models=models, metrics=metrics, log=log, embedder=embedder, data=data, chat=chat, usage=usage
    )
    return Enclave(attester, manifest, app, suite=config.suite, key_id=key_id)
