"""The host's document store runs out of disk (ENOSPC) under the encrypted RAG store.

The real chain: DocumentStore and KeyRing (enclave side) -> SocketBlobStore -> the host's services socket
-> HostServices -> FileBlobs, writing under a tiny tmpfs (mounted for the test when the machine allows it;
otherwise the host's file writes are made to fail with ENOSPC). The disk fills at each write an ingest
makes in turn, and then naturally. Each failed ingest is a typed 503 (StorageUnavailableError); after
space is freed the same ingest succeeds; and after a restart (keys reloaded from the keyring blob, index
reloaded from its segments) every acknowledged document is there, word for word.

The write at which the index key is created used to lose data: the keyring write failed but the new key
stayed in memory, the retried ingest then encrypted the index under a key that no restart could recover.
Fixed in enclavia.rag.keys (a key whose keyring write fails is forgotten).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hashlib
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from enclavia.crypto import aead
from enclavia.errors import StorageUnavailableError
from enclavia.host import services as host_services
from enclavia.host.services import HostServices
from enclavia.rag.blobstore import SocketBlobStore
from enclavia.rag.keys import KeyRing, StaticKekSource
from enclavia.rag.store import DocumentStore

DIM = 16


def embed(texts: list[str]) -> npt.NDArray[np.float32]:
    out = np.zeros((len(texts), DIM), dtype=np.float32)
    for i, t in enumerate(texts):
        for w in t.split():
            out[i, hashlib.sha256(w.encode()).digest()[0] % DIM] += 1.0
    return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-9)


class Disk:
    """A small filesystem for the blob root: tmpfs when mount is permitted, else ENOSPC injected into the
    host's writes. ``fill`` leaves no free byte; ``free`` gives the space back."""

    def __init__(self, root: Path, monkeypatch: pytest.MonkeyPatch, size_kib: int = 512) -> None:
        self.root = root
        root.mkdir()
        self.full = False
        self.mounted = (
            subprocess.run(
                ["mount", "-t", "tmpfs", "-o", f"size={size_kib}k,mode=0700", "enclavia-test", str(root)],
                capture_output=True,
                check=False,
            ).returncode
            == 0
        )
        if not self.mounted:
            real_open = open

            def enospc_open(path: Any, mode: str = "r", *args: Any, **kw: Any) -> Any:
                fh = real_open(path, mode, *args, **kw)
                if "w" in mode and self.full:
                    fh.close()
                    raise OSError(errno.ENOSPC, "No space left on device")
                return fh

            monkeypatch.setattr(host_services, "open", enospc_open, raising=False)

    def fill(self) -> None:
        self.full = True
        if not self.mounted:
            return
        with contextlib.suppress(OSError), (self.root / "filler").open("wb", buffering=0) as fh:
            while fh.write(b"\0" * 4096):
                pass
        with contextlib.suppress(OSError), (self.root / "filler2").open("wb", buffering=0) as fh:
            while fh.write(b"\0"):
                pass

    def free(self, grow_kib: int | None = None) -> None:
        self.full = False
        for name in ("filler", "filler2"):
            (self.root / name).unlink(missing_ok=True)
        if grow_kib and self.mounted:
            subprocess.run(["mount", "-o", f"remount,size={grow_kib}k", str(self.root)], check=True)

    def close(self) -> None:
        if self.mounted:
            subprocess.run(["umount", "-l", str(self.root)], check=False)


class Host:
    """HostServices on its socket, in a thread with its own event loop."""

    def __init__(self, socket_path: Path, blob_root: Path) -> None:
        self.services = HostServices(str(socket_path), blob_root)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self.services.start(), self.loop).result(10)

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self.services.stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


class CountingBlobs(SocketBlobStore):
    """The enclave's blob client, with a hook before the n-th put (to fill the disk right there)."""

    def __init__(self, path: str) -> None:
        super().__init__(path, timeout=10)
        self.puts = 0
        self.before_put: dict[int, Any] = {}

    def put(self, name: str, data: bytes) -> None:
        hook = self.before_put.pop(self.puts, None)
        self.puts += 1
        if hook is not None:
            hook()
        super().put(name, data)


@pytest.fixture
def disk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Disk]:
    d = Disk(tmp_path / "blobs", monkeypatch)
    yield d
    d.close()


@pytest.fixture
def host(tmp_path: Path, disk: Disk) -> Iterator[Host]:
    h = Host(tmp_path / "services.sock", disk.root)
    yield h
    h.close()


KEKS = {"kek-1": aead.generate_key()}


def open_store(host: Host) -> tuple[DocumentStore, CountingBlobs]:
    """What an enclave (re)start does: a new blob client, the keyring and index read back from blobs."""
    blobs = CountingBlobs(host.services.socket_path)
    keys = KeyRing(blobs, StaticKekSource(dict(KEKS), "kek-1"))
    return DocumentStore(blobs, keys, embed, DIM), blobs


def check_everything(host: Host, acknowledged: dict[tuple[str, str], str]) -> None:
    """After a restart: every acknowledged document is retrievable, exactly, in its tenant only."""
    store, _ = open_store(host)
    tenants = {t for t, _ in acknowledged}
    for tenant in tenants:
        docs = {d: text for (t, d), text in acknowledged.items() if t == tenant}
        assert store.count(tenant) == len(docs), tenant
        for doc, text in docs.items():
            hits = store.query(tenant, text, k=len(docs), document_ids=frozenset({doc}))
            assert [(h.document_id, h.text) for h in hits] == [(doc, text)], (tenant, doc)


def _text(i: int) -> str:
    return f"note {i} " + " ".join(f"w{i}x{j}" for j in range(40))


def test_disk_full_at_every_write_of_an_ingest(host: Host, disk: Disk) -> None:
    store, blobs = open_store(host)
    acknowledged: dict[tuple[str, str], str] = {}
    store.ingest("t-seed", [("seed", "", _text(0))])
    acknowledged[("t-seed", "seed")] = _text(0)

    start = blobs.puts
    store.ingest("t-probe", [("probe", "", _text(1))])
    acknowledged[("t-probe", "probe")] = _text(1)
    writes = blobs.puts - start
    assert writes >= 4  # chunk, keyring (document key), keyring (index key), segment, meta

    for k in range(writes):
        tenant, doc, text = f"t-{k}", f"d-{k}", _text(10 + k)
        blobs.before_put[blobs.puts + k] = disk.fill
        with pytest.raises(StorageUnavailableError):
            store.ingest(tenant, [(doc, "", text)])
        disk.free()
        assert store.ingest(tenant, [(doc, "", text)]) == 1  # the client retries: acknowledged now
        acknowledged[(tenant, doc)] = text
        check_everything(host, acknowledged)  # as if the enclave restarted right now

    check_everything(host, acknowledged)


def test_disk_fills_up_naturally(host: Host, disk: Disk) -> None:
    if not disk.mounted:
        pytest.skip("needs a real tmpfs (mount not permitted here); the write-by-write test covers ENOSPC")
    store, _ = open_store(host)
    acknowledged: dict[tuple[str, str], str] = {}
    failures = 0
    for i in range(400):
        tenant, doc, text = f"tenant-{i % 5}", f"doc-{i}", _text(i)
        try:
            store.ingest(tenant, [(doc, "", text)])
        except StorageUnavailableError:
            failures += 1
            if failures >= 3:
                break
            continue
        acknowledged[(tenant, doc)] = text
    assert failures >= 3 and len(acknowledged) > 10, (failures, len(acknowledged))
    check_everything(host, acknowledged)  # full disk: reads still work, nothing acknowledged is lost
    disk.free(grow_kib=4096)
    for i in range(400, 410):
        tenant, doc, text = f"tenant-{i % 5}", f"doc-{i}", _text(i)
        store.ingest(tenant, [(doc, "", text)])
        acknowledged[(tenant, doc)] = text
    check_everything(host, acknowledged)
