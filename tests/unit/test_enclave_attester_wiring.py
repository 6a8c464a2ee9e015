"""`enclavia serve --tee sev-snp|tdx|nitro`: the enclave asks the platform attester for evidence over
exactly the report_data of DESIGN.md, and ships what the verifier needs beside it."""

from __future__ import annotations

from pathlib import Path

import pytest

from enclavia.attestation.binding import compute_report_data
from enclavia.attestation.claims import Tee
from enclavia.enclave.boot import EnclaveConfig, make_attester
from enclavia.enclave.core import Enclave
from enclavia.enclave.image import build_manifest
from enclavia.enclave.routes import InnerApp
from enclavia.tee.configfs_tsm import ConfigfsTsmAttester
from enclavia.tee.nitro_nsm import NitroNsmAttester
from tests.unit.test_tee_configfs_tsm import FakeTsm


def _enclave(attester: object) -> Enclave:
    manifest = build_manifest({}, {"tee": "test"})
    return Enclave(attester, manifest, InnerApp(models={}))  # type: ignore[arg-type]


@pytest.mark.parametrize(("tee", "provider"), [(Tee.SEV_SNP, "sev_guest"), (Tee.TDX, "tdx_guest")])
def test_configfs_tsm_evidence_binds_the_bundle(tmp_path: Path, tee: Tee, provider: str) -> None:
    fake = FakeTsm(provider)
    enclave = _enclave(ConfigfsTsmAttester(tee=tee, root=tmp_path, fs=fake))
    nonce = bytes(range(32))
    bundle = enclave.attestation_bundle(nonce)
    expected = compute_report_data(
        nonce, bundle.key_config, bundle.signing_public_key, enclave.manifest_digest
    )
    assert bundle.tee is tee
    assert bundle.evidence == b"REPORT:" + provider.encode() + b":" + expected
    assert (bundle.aux is not None) == (tee is Tee.SEV_SNP)


def test_make_attester_picks_the_platform_backend(tmp_path: Path) -> None:
    for tee, cls in (
        (Tee.SEV_SNP, ConfigfsTsmAttester),
        (Tee.TDX, ConfigfsTsmAttester),
        (Tee.NITRO, NitroNsmAttester),
    ):
        attester = make_attester(EnclaveConfig(tmp_path, tmp_path, tee=tee.value), b"\x00" * 48)
        assert isinstance(attester, cls)
        assert attester.tee is tee
    with pytest.raises(ValueError):
        make_attester(EnclaveConfig(tmp_path, tmp_path, tee="sgx"), b"\x00" * 48)
