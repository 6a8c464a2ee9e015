"""configfs-tsm attester against a fake provider in a temporary directory, including the generation race."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from enclavia.attestation.claims import Tee
from enclavia.errors import AttesterError
from enclavia.tee.base import Attester
from enclavia.tee.configfs_tsm import ConfigfsTsmAttester, OsFilesystem

RD = bytes(range(64))


class FakeTsm(OsFilesystem):
    """What the kernel does behind configfs-tsm, played on a plain directory: mkdir makes the attributes,
    every write bumps ``generation``, writing ``inblob`` produces ``outblob`` (and SEV-SNP's ``auxblob``)."""

    def __init__(self, provider: str = "tdx_guest", *, auxblob: bytes | None = b"CERT-TABLE") -> None:
        self.provider = provider
        self.auxblob = auxblob
        self.on_read: Callable[[Path], None] | None = None
        self.log: list[tuple[str, str]] = []

    def mkdir(self, path: Path) -> None:
        super().mkdir(path)
        (path / "provider").write_text(self.provider + "\n")
        (path / "generation").write_text("0\n")
        for name in ("inblob", "outblob", "privlevel"):
            (path / name).write_bytes(b"")
        if self.provider == "sev_guest" and self.auxblob is not None:
            (path / "auxblob").write_bytes(b"")

    def rmdir(self, path: Path) -> None:
        for child in path.iterdir():  # configfs removes attributes with the entry
            child.unlink()
        super().rmdir(path)

    def read(self, path: Path) -> bytes:
        self.log.append(("read", path.name))
        if self.on_read is not None:
            self.on_read(path)
        return super().read(path)

    def write(self, path: Path, data: bytes) -> None:
        self.log.append(("write", path.name))
        super().write(path, data)
        self.kernel_write(path, data)

    def kernel_write(self, path: Path, data: bytes) -> None:
        gen = path.parent / "generation"
        gen.write_text(f"{int(gen.read_text()) + 1}\n")
        if path.name == "inblob":
            (path.parent / "outblob").write_bytes(b"REPORT:" + self.provider.encode() + b":" + data)
            if (path.parent / "auxblob").exists():
                (path.parent / "auxblob").write_bytes(self.auxblob or b"")


@pytest.fixture
def root(tmp_path: Path) -> Path:
    r = tmp_path / "tsm" / "report"
    r.mkdir(parents=True)
    return r


def test_tdx_report(root: Path) -> None:
    fs = FakeTsm("tdx_guest")
    att = ConfigfsTsmAttester(tee=Tee.TDX, root=root, fs=fs)
    ev = att.attest(RD)
    assert ev.tee is Tee.TDX and ev.evidence == b"REPORT:tdx_guest:" + RD and ev.aux is None
    assert list(root.iterdir()) == []  # entry removed
    writes = [name for op, name in fs.log if op == "write"]
    assert writes == ["inblob"]
    reads = [name for op, name in fs.log if op == "read"]
    assert reads == ["provider", "generation", "generation", "outblob", "generation"]


def test_sev_snp_report_with_privlevel_and_auxblob(root: Path) -> None:
    fs = FakeTsm("sev_guest")
    att = ConfigfsTsmAttester(tee=Tee.SEV_SNP, root=root, privlevel=2, fs=fs)
    ev = att.attest(RD)
    assert ev.tee is Tee.SEV_SNP and ev.evidence.endswith(RD) and ev.aux == b"CERT-TABLE"
    assert [n for op, n in fs.log if op == "write"] == ["privlevel", "inblob"]
    assert list(root.iterdir()) == []


def test_sev_snp_without_auxblob(root: Path) -> None:
    att = ConfigfsTsmAttester(tee=Tee.SEV_SNP, root=root, fs=FakeTsm("sev_guest", auxblob=None))
    assert att.attest(RD).aux is None


def test_is_an_attester(root: Path) -> None:
    att: Attester = ConfigfsTsmAttester(tee=Tee.TDX, root=root, fs=FakeTsm())
    assert att.tee is Tee.TDX


def test_detect(root: Path) -> None:
    assert ConfigfsTsmAttester.detect(root, fs=FakeTsm("sev_guest")).tee is Tee.SEV_SNP
    assert ConfigfsTsmAttester.detect(root, fs=FakeTsm("tdx_guest")).tee is Tee.TDX
    with pytest.raises(AttesterError):
        ConfigfsTsmAttester.detect(root, fs=FakeTsm("arm_cca_guest"))
    assert list(root.iterdir()) == []


def test_race_after_our_write(root: Path) -> None:
    """Another writer rewrites inblob between our write and our read of outblob."""
    fs = FakeTsm()

    def intruder(path: Path) -> None:
        if path.name == "outblob":
            fs.on_read = None
            OsFilesystem.write(fs, path.parent / "inblob", b"\xee" * 64)
            fs.kernel_write(path.parent / "inblob", b"\xee" * 64)

    fs.on_read = intruder
    with pytest.raises(AttesterError, match="concurrently"):
        ConfigfsTsmAttester(tee=Tee.TDX, root=root, fs=fs).attest(RD)
    assert list(root.iterdir()) == []


def test_race_before_our_read(root: Path) -> None:
    """Another writer got in after our write, before we first read the generation."""
    fs = FakeTsm()
    seen = {"gen": 0}

    def intruder(path: Path) -> None:
        if path.name == "generation":
            seen["gen"] += 1
            if seen["gen"] == 2:
                fs.kernel_write(path.parent / "privlevel", b"0")

    fs.on_read = intruder
    with pytest.raises(AttesterError, match="concurrently"):
        ConfigfsTsmAttester(tee=Tee.TDX, root=root, fs=fs).attest(RD)


def test_provider_mismatch(root: Path) -> None:
    with pytest.raises(AttesterError):
        ConfigfsTsmAttester(tee=Tee.TDX, root=root, fs=FakeTsm("sev_guest")).attest(RD)
    assert list(root.iterdir()) == []


def test_device_missing(tmp_path: Path) -> None:
    with pytest.raises(AttesterError):
        ConfigfsTsmAttester(tee=Tee.TDX, root=tmp_path / "absent").attest(RD)
    with pytest.raises(AttesterError):
        ConfigfsTsmAttester.detect(tmp_path / "absent")


def test_empty_outblob(root: Path) -> None:
    class Empty(FakeTsm):
        def kernel_write(self, path: Path, data: bytes) -> None:
            gen = path.parent / "generation"
            gen.write_text(f"{int(gen.read_text()) + 1}\n")

    with pytest.raises(AttesterError):
        ConfigfsTsmAttester(tee=Tee.TDX, root=root, fs=Empty()).attest(RD)


def test_io_error_mid_report(root: Path) -> None:
    class Broken(FakeTsm):
        def read(self, path: Path) -> bytes:
            if path.name == "outblob":
                raise OSError(5, "EIO")
            return super().read(path)

    with pytest.raises(AttesterError):
        ConfigfsTsmAttester(tee=Tee.TDX, root=root, fs=Broken()).attest(RD)
    assert list(root.iterdir()) == []


def test_garbage_generation(root: Path) -> None:
    class Garbage(FakeTsm):
        def read(self, path: Path) -> bytes:
            return b"nope" if path.name == "generation" else super().read(path)

    with pytest.raises(AttesterError):
        ConfigfsTsmAttester(tee=Tee.TDX, root=root, fs=Garbage()).attest(RD)


@pytest.mark.parametrize("rd", [b"", b"\x00" * 63, b"\x00" * 65])
def test_report_data_must_be_64_bytes(root: Path, rd: bytes) -> None:
    with pytest.raises(ValueError):
        ConfigfsTsmAttester(tee=Tee.TDX, root=root, fs=FakeTsm()).attest(rd)


def test_misuse() -> None:
    with pytest.raises(ValueError):
        ConfigfsTsmAttester(tee=Tee.NITRO)
    with pytest.raises(ValueError):
        ConfigfsTsmAttester(tee=Tee.TDX, privlevel=0)
    with pytest.raises(ValueError):
        ConfigfsTsmAttester(tee=Tee.SEV_SNP, privlevel=4)
