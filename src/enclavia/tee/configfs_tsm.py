"""SEV-SNP and TDX evidence through Linux configfs-tsm (Documentation/ABI/testing/configfs-tsm).

One report per call::

    mkdir  <root>/<entry>                    a private report entry (random name)
    read   provider                          sev_guest -> SEV-SNP, tdx_guest -> TDX
    read   generation                        g0
    write  privlevel                         optional (SEV-SNP VMPL 0..3)
    write  inblob                            exactly the 64 bytes of report_data
    read   generation                        must be g0 + number of our writes
    read   outblob, auxblob                  the report / quote, and SEV-SNP's certificate table
    read   generation                        must not have moved
    rmdir  <root>/<entry>

The kernel bumps ``generation`` on every write to the entry; a value other than the one our own writes
explain means another writer touched the entry between our write and our read, so the outblob may not be
for our report_data: refused (AttesterError), never returned.

The file operations sit behind :class:`TsmFilesystem` so that tests can run the same code against a fake
provider in a temporary directory.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from enclavia.attestation.claims import Tee
from enclavia.errors import AttesterError
from enclavia.tee.base import Evidence

DEFAULT_ROOT = Path("/sys/kernel/config/tsm/report")
REPORT_DATA_LEN = 64
MAX_BLOB_LEN = 1 << 20
PROVIDERS: dict[str, Tee] = {"sev_guest": Tee.SEV_SNP, "tdx_guest": Tee.TDX}
PRIVLEVEL_MAX = 3


class TsmFilesystem(Protocol):
    def mkdir(self, path: Path) -> None: ...
    def rmdir(self, path: Path) -> None: ...
    def read(self, path: Path) -> bytes: ...
    def write(self, path: Path, data: bytes) -> None: ...


class OsFilesystem:
    """The real thing: one open/read-all/close or open/write/close per attribute, as configfs expects (binary
    attributes are committed when the file is closed)."""

    def mkdir(self, path: Path) -> None:
        os.mkdir(path, 0o700)

    def rmdir(self, path: Path) -> None:
        os.rmdir(path)

    def read(self, path: Path) -> bytes:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            chunks: list[bytes] = []
            total = 0
            while chunk := os.read(fd, 65536):
                total += len(chunk)
                if total > MAX_BLOB_LEN:
                    raise AttesterError("configfs-tsm attribute too large")
                chunks.append(chunk)
            return b"".join(chunks)
        finally:
            os.close(fd)

    def write(self, path: Path, data: bytes) -> None:
        fd = os.open(path, os.O_WRONLY | os.O_TRUNC | os.O_CLOEXEC)
        try:
            if os.write(fd, data) != len(data):
                raise AttesterError("configfs-tsm short write")
        finally:
            os.close(fd)


def _generation(fs: TsmFilesystem, entry: Path) -> int:
    try:
        return int(fs.read(entry / "generation").decode("ascii").strip())
    except (UnicodeDecodeError, ValueError):
        raise AttesterError("configfs-tsm generation unreadable") from None


@dataclass
class ConfigfsTsmAttester:
    """Attester for a confidential VM with a configfs-tsm provider (SEV-SNP guest or TDX guest)."""

    tee: Tee
    root: Path = DEFAULT_ROOT
    privlevel: int | None = None
    fs: TsmFilesystem = field(default_factory=OsFilesystem)

    def __post_init__(self) -> None:
        if self.tee not in PROVIDERS.values():
            raise ValueError("configfs-tsm serves SEV-SNP and TDX only")
        if self.privlevel is not None:
            if self.tee is not Tee.SEV_SNP:
                raise ValueError("privlevel applies to SEV-SNP only")
            if not 0 <= self.privlevel <= PRIVLEVEL_MAX:
                raise ValueError("privlevel must be 0..3")

    @classmethod
    def detect(
        cls, root: Path = DEFAULT_ROOT, *, privlevel: int | None = None, fs: TsmFilesystem | None = None
    ) -> ConfigfsTsmAttester:
        """Create a probe entry, read its provider, and return an attester for that TEE."""
        fs = fs or OsFilesystem()
        entry = root / f"enclavia-probe-{secrets.token_hex(8)}"
        try:
            fs.mkdir(entry)
        except OSError:
            raise AttesterError("configfs-tsm not available") from None
        try:
            tee = _provider(fs, entry)
        finally:
            _remove(fs, entry)
        return cls(tee=tee, root=root, privlevel=privlevel, fs=fs)

    def attest(self, report_data: bytes) -> Evidence:
        """Evidence whose report_data is exactly these 64 bytes."""
        if not isinstance(report_data, bytes) or len(report_data) != REPORT_DATA_LEN:
            raise ValueError("report_data must be 64 bytes")
        entry = self.root / f"enclavia-{secrets.token_hex(8)}"
        try:
            self.fs.mkdir(entry)
        except OSError:
            raise AttesterError("configfs-tsm report entry could not be created") from None
        try:
            return self._attest_in(entry, report_data)
        except OSError:
            raise AttesterError("configfs-tsm report failed") from None
        finally:
            _remove(self.fs, entry)

    def _attest_in(self, entry: Path, report_data: bytes) -> Evidence:
        # 1. The provider is the TEE this attester was made for.
        if _provider(self.fs, entry) is not self.tee:
            raise AttesterError("configfs-tsm provider is not the expected TEE")
        # 2. Our writes, counted against the generation.
        start = _generation(self.fs, entry)
        writes = 0
        if self.privlevel is not None:
            self.fs.write(entry / "privlevel", f"{self.privlevel}\n".encode())
            writes += 1
        self.fs.write(entry / "inblob", report_data)
        writes += 1
        before = _generation(self.fs, entry)
        if before != start + writes:
            raise AttesterError("configfs-tsm entry written concurrently")
        # 3. The report, and SEV-SNP's certificate table.
        out = self.fs.read(entry / "outblob")
        aux = self._aux(entry)
        # 4. Nobody wrote in between: the outblob is for our inblob.
        if _generation(self.fs, entry) != before:
            raise AttesterError("configfs-tsm entry written concurrently")
        if not out:
            raise AttesterError("configfs-tsm returned no report")
        return Evidence(tee=self.tee, evidence=out, aux=aux or None)

    def _aux(self, entry: Path) -> bytes | None:
        if self.tee is not Tee.SEV_SNP:
            return None
        try:
            return self.fs.read(entry / "auxblob")
        except FileNotFoundError:
            return None  # older kernels, or no certificates provisioned by the host


def _provider(fs: TsmFilesystem, entry: Path) -> Tee:
    try:
        name = fs.read(entry / "provider").decode("ascii").strip()
    except (OSError, UnicodeDecodeError):
        raise AttesterError("configfs-tsm provider unreadable") from None
    tee = PROVIDERS.get(name)
    if tee is None:
        raise AttesterError("configfs-tsm provider not supported")
    return tee


def _remove(fs: TsmFilesystem, entry: Path) -> None:
    # Best effort: the entry holds no secret (report_data is public); a leftover is only clutter.
    with contextlib.suppress(OSError):
        fs.rmdir(entry)
