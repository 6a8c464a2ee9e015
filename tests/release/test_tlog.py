"""Transparency log: SQL store (SQLite, PostgreSQL), signed tree heads, proofs, HTTP API."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

from enclavia.attestation.tlog import (
    MemoryTreeHeadStore,
    check_release_included,
    parse_tree_head,
    verify_tree_head,
)
from enclavia.client.tlog import FileTreeHeadStore, HttpLogReader
from enclavia.crypto.merkle import leaf_hash, mth, verify_consistency, verify_inclusion
from enclavia.crypto.signing import SigningKey
from enclavia.errors import (
    ConsistencyProofError,
    InclusionProofError,
    LogAppendError,
    LogEntryNotFoundError,
    TreeHeadInvalidError,
)
from enclavia.release.tlog import TransparencyLog
from enclavia.release.tlog_server import create_log_app
from tests.release.helpers import Authority

MakeLog = Callable[..., TransparencyLog]
TOKEN = "tok-" + "z" * 40


def _digest(i: int) -> bytes:
    return bytes([i]) * 48


def _fill(log: TransparencyLog, auth: Authority, n: int) -> list[bytes]:
    leaves = []
    for i in range(n):
        leaf = auth.release(_digest(i + 1), f"1.0.{i}").encode()
        assert log.append(leaf).index == i
        leaves.append(leaf)
    return leaves


def test_append_heads_and_proofs(make_log: MakeLog, authority: Authority) -> None:
    log = make_log()
    empty = log.get_sth()
    assert empty.tree_size == 0
    verify_tree_head(empty, log.public_key)
    leaves = _fill(log, authority, 7)
    sth = log.get_sth()
    verify_tree_head(sth, log.public_key)
    assert sth.tree_size == 7 and sth.root_hash == mth(leaves)
    heads = {}
    for size in range(1, 8):
        heads[size] = mth(leaves[:size])
        for i in range(size):
            proof = log.get_inclusion_proof(leaf_hash(leaves[i]), size)
            assert proof.leaf_index == i
            verify_inclusion(i, size, leaf_hash(leaves[i]), proof.path, heads[size])
        with pytest.raises(InclusionProofError):
            log.get_inclusion_proof(leaf_hash(leaves[-1]), size) if size < 7 else log.get_inclusion_proof(
                leaf_hash(b"absent"), size
            )
    for m in range(1, 8):
        for n in range(m, 8):
            verify_consistency(m, n, heads[m], heads[n], log.get_consistency_proof(m, n))
    with pytest.raises(ConsistencyProofError):
        log.get_consistency_proof(3, 9)
    assert [e.index for e in log.get_entries(2, 4)] == [2, 3, 4]
    assert log.get_entries(5, 100)[-1].leaf_input == leaves[-1]
    assert [e.index for e in log.lookup(_digest(3))] == [2]


def test_append_is_idempotent_and_checks_the_leaf(make_log: MakeLog, authority: Authority) -> None:
    log = make_log()
    leaf = authority.release().encode()
    first = log.append(leaf)
    again = log.append(leaf)
    assert again.duplicate and again.index == first.index == 0 and log.size() == 1
    with pytest.raises(LogAppendError):
        log.append(b"not a release")
    with pytest.raises(LogAppendError):
        log.append(json.dumps(json.loads(leaf), indent=1).encode())  # not canonical
    with pytest.raises(LogAppendError):
        log.append(Authority().release().encode())  # another release key
    assert log.size() == 1


def test_approvals_can_be_required_at_append(make_log: MakeLog, authority: Authority) -> None:
    log = make_log(approvers=authority.approvers)
    with pytest.raises(LogAppendError):
        log.append(authority.release(approvals=1).encode())
    assert log.append(authority.release(approvals=2).encode()).index == 0


def test_state_survives_reopening(make_log: MakeLog, authority: Authority, log_key: SigningKey) -> None:
    log = make_log(prefix="reopen_" + log_key.public_bytes.hex()[:8] + "_")
    _fill(log, authority, 3)
    sth = log.get_sth()
    reopened = make_log(prefix="reopen_" + log_key.public_bytes.hex()[:8] + "_")
    assert reopened.get_sth() == sth
    assert reopened.append(authority.release(_digest(9)).encode()).index == 3


def test_concurrent_appends_get_distinct_contiguous_indexes(make_log: MakeLog, authority: Authority) -> None:
    log = make_log()
    other = make_log()  # a second instance on the same tables: another server process
    leaves = [authority.release(_digest(i + 1), f"2.0.{i}").encode() for i in range(8)]
    errors: list[BaseException] = []

    def run(target: TransparencyLog, chunk: list[bytes]) -> None:
        try:
            for leaf in chunk:
                target.append(leaf)
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [
        threading.Thread(target=run, args=(log, leaves[0::2])),
        threading.Thread(target=run, args=(other, leaves[1::2])),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    entries = log.get_entries(0, 100)
    assert [e.index for e in entries] == list(range(8))
    assert sorted(e.leaf_input for e in entries) == sorted(leaves)
    assert log.get_sth().root_hash == mth([e.leaf_input for e in entries])


# -- HTTP API --------------------------------------------------------------------------------------


def _http(log: TransparencyLog, token: str | None = TOKEN) -> TestClient:
    return TestClient(create_log_app(log, token))


def test_http_api_round_trip(make_log: MakeLog, authority: Authority, tmp_path: Any) -> None:
    log = make_log()
    client = _http(log)
    leaf = authority.release(_digest(5)).encode()
    assert client.post("/tlog/v1/entries", content=leaf).status_code == 401
    bad = client.post("/tlog/v1/entries", content=leaf, headers={"authorization": "Bearer nope"})
    assert bad.status_code == 401 and bad.json()["code"] == "broker.admin_unauthorized"
    ok = client.post("/tlog/v1/entries", content=leaf, headers={"authorization": f"Bearer {TOKEN}"})
    assert ok.status_code == 201 and ok.json()["index"] == 0
    dup = client.post("/tlog/v1/entries", content=leaf, headers={"authorization": f"Bearer {TOKEN}"})
    assert dup.status_code == 200 and dup.json()["duplicate"] is True
    junk = client.post("/tlog/v1/entries", content=b"{}", headers={"authorization": f"Bearer {TOKEN}"})
    assert junk.status_code == 400 and junk.json()["code"] == "tlog.append_refused"
    sth = parse_tree_head(client.get("/tlog/v1/sth").json())
    verify_tree_head(sth, log.public_key)
    reader = HttpLogReader("http://testserver", http=client)
    assert reader.get_sth() == sth
    proof = reader.get_inclusion_proof(leaf_hash(leaf), 1)
    verify_inclusion(proof.leaf_index, 1, leaf_hash(leaf), proof.path, sth.root_hash)
    r = client.get("/tlog/v1/proof/inclusion", params={"leaf_hash": "zz", "tree_size": "1"})
    assert r.status_code == 403 and r.json()["code"] == "tlog.inclusion"
    r = client.get("/tlog/v1/proof/consistency", params={"first": "0", "second": "1"})
    assert r.json()["code"] == "tlog.consistency"
    assert reader.get_entries(0, 0)[0].leaf_input == leaf
    # the full client check over HTTP, with the head kept in a file between runs
    store = FileTreeHeadStore(tmp_path / "state.json")
    check = check_release_included(
        reader,
        log_public_key=log.public_key,
        store=store,
        manifest_digest=_digest(5),
        release_keys=[authority.release_key.public_bytes],
        approvers=authority.approvers,
    )
    assert check.index == 0 and check.approvers == ("alice", "bob")
    assert store.load(sth.log_id) == sth
    # no token configured: appends are off
    assert _http(log, None).post("/tlog/v1/entries", content=leaf).status_code == 401


# -- what the client detects -----------------------------------------------------------------------


class Tamper:
    """A LogReader in front of a real log that changes one answer."""

    def __init__(self, log: TransparencyLog, **overrides: Callable[..., Any]) -> None:
        self.log = log
        self.overrides = overrides

    def __getattr__(self, name: str) -> Any:
        return self.overrides.get(name, getattr(self.log, name))


def _check(reader: Any, log: TransparencyLog, digest: bytes, store: Any = None, **kw: Any) -> Any:
    return check_release_included(
        reader,
        log_public_key=log.public_key,
        store=store or MemoryTreeHeadStore(),
        manifest_digest=digest,
        **kw,
    )


def test_modified_leaf_is_detected(make_log: MakeLog, authority: Authority) -> None:
    log = make_log()
    _fill(log, authority, 5)
    _check(log, log, _digest(3))

    def lookup(digest: bytes) -> list[Any]:
        entries = log.lookup(digest)
        doc = json.loads(entries[0].leaf_input)
        doc["record"]["version"] = "9.9.9"
        return [
            type(entries[0])(
                entries[0].index, json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
            )
        ]

    def proof_for_original(h: bytes, size: int) -> Any:
        return log.get_inclusion_proof(log.lookup(_digest(3))[0].leaf_hash, size)

    with pytest.raises(InclusionProofError):
        _check(Tamper(log, lookup=lookup, get_inclusion_proof=proof_for_original), log, _digest(3))
    with pytest.raises(InclusionProofError):
        _check(Tamper(log, lookup=lookup), log, _digest(3))


def test_modified_tree_head_is_detected(make_log: MakeLog, authority: Authority) -> None:
    log = make_log()
    _fill(log, authority, 4)
    real = log.get_sth()
    for changed in (
        type(real)(real.log_id, real.tree_size, real.timestamp, bytes(32), real.signature),
        type(real)(real.log_id, real.tree_size + 1, real.timestamp, real.root_hash, real.signature),
        type(real)(real.log_id, real.tree_size, real.timestamp + 1, real.root_hash, real.signature),
    ):
        with pytest.raises(TreeHeadInvalidError):
            _check(Tamper(log, get_sth=lambda c=changed: c), log, _digest(2))
    # a head signed by another key (another log) is not this log's head
    with pytest.raises(TreeHeadInvalidError):
        check_release_included(
            log,
            log_public_key=SigningKey.generate().public_bytes,
            store=MemoryTreeHeadStore(),
            manifest_digest=_digest(2),
        )


def test_forked_log_is_detected(make_log: MakeLog, authority: Authority, log_key: SigningKey) -> None:
    """The operator shows this client one history, then another one (same key, diverging at entry 1)."""
    honest = make_log(prefix="honest_" + log_key.public_bytes.hex()[:6] + "_")
    forked = make_log(prefix="forked_" + log_key.public_bytes.hex()[:6] + "_")
    a = authority.release(_digest(1), "1.0.0").encode()
    b = authority.release(_digest(2), "1.1.0").encode()
    evil = authority.release(_digest(66), "1.1.0-evil").encode()
    c = authority.release(_digest(3), "1.2.0").encode()
    for leaf in (a, b):
        honest.append(leaf)
    for leaf in (a, evil, b, c):
        forked.append(leaf)
    store = MemoryTreeHeadStore()
    _check(honest, honest, _digest(2), store)
    with pytest.raises(ConsistencyProofError):
        _check(forked, honest, _digest(3), store)
    # a same-size head with another root is a fork too
    same_size = make_log(prefix="same_" + log_key.public_bytes.hex()[:6] + "_")
    for leaf in (a, evil):
        same_size.append(leaf)
    with pytest.raises(ConsistencyProofError):
        _check(same_size, honest, _digest(1), store)
    # and the honest log, grown, is still accepted
    honest.append(c)
    assert _check(honest, honest, _digest(3), store).tree_head.tree_size == 3


def test_lagging_mirror_is_accepted_but_does_not_roll_back(make_log: MakeLog, authority: Authority) -> None:
    log = make_log()
    _fill(log, authority, 3)
    store = MemoryTreeHeadStore()
    head3 = _check(log, log, _digest(1), store).tree_head
    log.append(authority.release(_digest(9), "3.0.0").encode())
    head4 = _check(log, log, _digest(9), store).tree_head
    # a mirror still at size 3: consistent, accepted, the stored head stays at 4
    _check(Tamper(log, get_sth=lambda: head3), log, _digest(1), store)
    assert store.load(head4.log_id) == head4


def test_entry_missing_is_detected(make_log: MakeLog, authority: Authority) -> None:
    log = make_log()
    _fill(log, authority, 2)
    with pytest.raises(LogEntryNotFoundError):
        _check(log, log, _digest(42))
