"""`enclavia serve --tee sev-snp|tdx`: at start the enclave reads the launch config slot of its own first
report (SNP host_data, TDX MRCONFIGID) and refuses (exit 78, typed reason) unless it carries its manifest."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from enclavia import channel
from enclavia.attestation.claims import Tee
from enclavia.attestation.platforms.tdx.abi import HEADER_LEN
from enclavia.enclave import main as enclave_main
from enclavia.enclave.platform_binding import check_platform_binding
from enclavia.errors import EvidenceFormatError, PlatformBindingError
from enclavia.tee.configfs_tsm import ConfigfsTsmAttester
from tests.attestation_factory import build_report
from tests.unit.test_enclave_attester_wiring import _enclave
from tests.unit.test_tee_configfs_tsm import FakeTsm

MRCONFIGID_AT = HEADER_LEN + 16 + 48 + 48 + 8 + 8 + 8 + 48


class SlotTsm(FakeTsm):
    """The fake kernel answers with a report in the platform's own format, its config slot set to ``slot``
    (as the VMM set it at launch)."""

    def __init__(self, provider: str, slot: bytes, quote: bytes = b"") -> None:
        super().__init__(provider)
        self.slot = slot
        self.quote = quote

    def kernel_write(self, path: Path, data: bytes) -> None:
        super().kernel_write(path, data)
        if path.name != "inblob":
            return
        if self.provider == "sev_guest":
            out = build_report(None, report_data=data, host_data=self.slot)
        else:
            q = bytearray(self.quote)
            q[MRCONFIGID_AT : MRCONFIGID_AT + 48] = self.slot
            out = bytes(q)
        (path.parent / "outblob").write_bytes(out)


def _flip(b: bytes) -> bytes:
    return bytes([b[0] ^ 1]) + b[1:]


@pytest.fixture(scope="module")
def quote(vectors: Path) -> bytes:
    return (vectors / "tdx" / "dcap-qvl" / "tdx_quote").read_bytes()


def _run(tmp_path: Path, tee: Tee, slot_for: object, quote: bytes) -> None:
    provider = "sev_guest" if tee is Tee.SEV_SNP else "tdx_guest"
    fake = SlotTsm(provider, b"")
    enclave = _enclave(ConfigfsTsmAttester(tee=tee, root=tmp_path, fs=fake))
    fake.slot = slot_for(enclave.manifest.canonical())  # type: ignore[operator]
    fake.quote = quote
    check_platform_binding(enclave)


def _sha256(b: bytes) -> bytes:
    return hashlib.sha256(b).digest()


def _sha384(b: bytes) -> bytes:
    return hashlib.sha384(b).digest()


def test_snp_host_data_carrying_the_manifest_starts(tmp_path: Path) -> None:
    _run(tmp_path, Tee.SEV_SNP, _sha256, b"")


def test_tdx_mrconfigid_carrying_the_manifest_starts(tmp_path: Path, quote: bytes) -> None:
    _run(tmp_path, Tee.TDX, _sha384, quote)


@pytest.mark.parametrize(
    ("tee", "slot_for"),
    [
        (Tee.SEV_SNP, lambda c: _flip(_sha256(c))),
        (Tee.SEV_SNP, lambda c: bytes(32)),  # the host set nothing
        (Tee.TDX, lambda c: _flip(_sha384(c))),
        (Tee.TDX, lambda c: bytes(48)),
    ],
)
def test_a_slot_that_does_not_carry_the_manifest_is_refused(
    tmp_path: Path, quote: bytes, tee: Tee, slot_for: object
) -> None:
    with pytest.raises(PlatformBindingError):
        _run(tmp_path, tee, slot_for, quote)


def test_a_report_that_does_not_parse_is_refused(tmp_path: Path) -> None:
    enclave = _enclave(ConfigfsTsmAttester(tee=Tee.SEV_SNP, root=tmp_path, fs=FakeTsm("sev_guest")))
    with pytest.raises(EvidenceFormatError):  # FakeTsm's outblob is not an SNP report
        check_platform_binding(enclave)


def test_tees_without_a_config_slot_are_not_asked(tmp_path: Path) -> None:
    class NoCall:
        tee = Tee.NITRO

        def attest(self, report_data: bytes) -> object:
            raise AssertionError("Nitro has no config slot: no start report is requested")

    check_platform_binding(_enclave(NoCall()))


def test_the_refusal_is_exit_78_with_its_code(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """main's refusal path: a PlatformBindingError at start is logged with its code and exits 78."""
    logged: list[dict[str, object]] = []

    class Log:
        def error(self, event: str, **kw: object) -> None:
            logged.append({"event": event, **kw})

    with pytest.raises(SystemExit) as exc:
        enclave_main._refuse(Log(), PlatformBindingError())
    assert exc.value.code == channel.EXIT_REFUSED == 78
    assert logged[0]["error_code"] == "attestation.manifest_not_bound"


@pytest.mark.slow
def test_the_enclave_process_asks_for_its_start_report(tmp_path: Path) -> None:
    """The real process under --tee sev-snp on a machine without configfs-tsm: the start check asks for the
    report before serving, so it is refused at start (exit 78), never ready without the check."""
    import json
    import os
    import subprocess
    import sys

    from enclavia import launch
    from enclavia.tee.simulated import init_platform_key

    if Path("/sys/kernel/config/tsm/report").exists():
        pytest.skip("a real configfs-tsm provider is present")
    init_platform_key(tmp_path / "sim")
    (tmp_path / "models").mkdir()
    args = ["--socket", str(tmp_path / "e.sock"), "--model-dir", str(tmp_path / "models")]
    cmd = launch.enclave_command(
        sys.executable, [*args, "--sim-dir", str(tmp_path / "sim"), "--tee", "sev-snp"]
    )
    done = subprocess.run(
        cmd, env=launch.enclave_env(os.environ), capture_output=True, text=True, timeout=120, check=False
    )
    events = [json.loads(line) for line in done.stderr.splitlines() if line.startswith("{")]
    assert done.returncode == channel.EXIT_REFUSED, done.stderr[-2000:]
    assert [e["error_code"] for e in events if e["event"] == "enclave.refused"] == [
        "attestation.attester_failed"
    ]
    assert not [e for e in events if e["event"] == "enclave.ready"]
