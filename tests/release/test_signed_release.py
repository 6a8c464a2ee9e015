"""Signed release records and k-of-n approvals."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from enclavia.attestation.claims import Claims, Tee
from enclavia.attestation.release import (
    Approval,
    ApproverSet,
    SignedRelease,
    approve,
    parse_signed_release,
    sign_record,
    verify_release,
)
from enclavia.cli.main import app
from enclavia.crypto.signing import SigningKey
from enclavia.errors import ApprovalQuorumError, ReleaseRecordInvalidError, ReleaseSignatureError
from tests.release.helpers import COMMIT, T0, Authority, record
from tests.support import ensure_model

runner = CliRunner()


def test_round_trip_and_canonical_bytes() -> None:
    auth = Authority()
    signed = auth.release()
    again = parse_signed_release(signed.encode())
    assert again == signed
    assert again.encode() == signed.encode()
    assert verify_release(again, release_keys=[auth.release_key.public_bytes], approvers=auth.approvers) == (
        "alice",
        "bob",
    )


def test_any_change_to_the_record_breaks_the_release_signature() -> None:
    auth = Authority()
    signed = auth.release()
    for changed in (
        replace(signed.record, version="1.0.1"),
        replace(signed.record, manifest_digest=b"\x12" * 48),
        replace(signed.record, source_commit="f" * 40),
        replace(signed.record, measurements={"simulated": {"measurement": "12" * 48}}),
        replace(signed.record, notes="x"),
    ):
        forged = SignedRelease(changed, signed.key_id, signed.signature, signed.approvals)
        with pytest.raises(ReleaseSignatureError):
            verify_release(forged, release_keys=[auth.release_key.public_bytes])


def test_untrusted_release_key() -> None:
    auth = Authority()
    with pytest.raises(ReleaseSignatureError):
        verify_release(auth.release(), release_keys=[SigningKey.generate().public_bytes])


def test_quorum_k_of_n() -> None:
    auth = Authority()
    keys = [auth.release_key.public_bytes]
    with pytest.raises(ApprovalQuorumError):
        verify_release(auth.release(approvals=1), release_keys=keys, approvers=auth.approvers)
    # the same approver twice counts once
    once = auth.release(approvals=1)
    twice = approve(once, "alice", auth.approver_keys["alice"])
    assert len(twice.approvals) == 1
    with pytest.raises(ApprovalQuorumError):
        verify_release(twice, release_keys=keys, approvers=auth.approvers)
    # a non-member's approval does not count
    outsider = approve(once, "mallory", SigningKey.generate())
    with pytest.raises(ApprovalQuorumError):
        verify_release(outsider, release_keys=keys, approvers=auth.approvers)
    # a member's name with someone else's key does not count either
    impostor = approve(once, "bob", SigningKey.generate())
    with pytest.raises(ApprovalQuorumError):
        verify_release(impostor, release_keys=keys, approvers=auth.approvers)
    assert verify_release(auth.release(approvals=3), release_keys=keys, approvers=auth.approvers) == (
        "alice",
        "bob",
        "carol",
    )
    # without an approver set only the release signature is checked
    assert verify_release(auth.release(approvals=0), release_keys=keys) == ()


def test_approval_is_bound_to_the_record_and_its_own_context() -> None:
    auth = Authority()
    a = auth.release(digest=b"\x01" * 48)
    b = auth.release(digest=b"\x02" * 48, approvals=0)
    moved = SignedRelease(b.record, b.key_id, b.signature, a.approvals)
    with pytest.raises(ReleaseSignatureError):
        verify_release(moved, release_keys=[auth.release_key.public_bytes], approvers=auth.approvers)
    # the release signature cannot pose as an approval (different context)
    k = auth.approver_keys["alice"]
    as_release = sign_record(a.record, k)
    fake = Approval("alice", a.approvals[0].key_id, as_release.signature)
    with pytest.raises(ReleaseSignatureError):
        verify_release(
            SignedRelease(a.record, a.key_id, a.signature, (fake,)),
            release_keys=[auth.release_key.public_bytes],
            approvers=auth.approvers,
        )


@pytest.mark.parametrize(
    "mutate",
    [
        lambda d: d.update(extra=1),
        lambda d: d["record"].update(schema="x"),
        lambda d: d["record"].update(manifest_digest="zz"),
        lambda d: d["record"].update(manifest_digest="11" * 47),
        lambda d: d["record"].update(source_commit="abc"),
        lambda d: d["record"].update(created_at="yesterday"),
        lambda d: d["record"].update(measurements={"quantum": {"m": "1"}}),
        lambda d: d["signature"].update(signature="***"),
        lambda d: d.update(approvals={}),
        lambda d: d["approvals"].append({"approver": "Bad Name", "key_id": "x", "signature": ""}),
    ],
)
def test_malformed_documents_are_refused(mutate: object) -> None:
    doc = Authority().release().to_json()
    mutate(doc)  # type: ignore[operator]
    with pytest.raises(ReleaseRecordInvalidError):
        parse_signed_release(json.dumps(doc).encode())


def test_record_matches_claims() -> None:
    rec = record(b"\x11" * 48)
    sim = Claims(tee=Tee.SIMULATED, measurement=b"\x11" * 48, report_data=b"", debug=False)
    assert rec.matches_claims(sim)
    assert not rec.matches_claims(replace(sim, measurement=b"\x12" * 48))
    nitro = replace(
        rec,
        measurements={"nitro": {"pcrs": {"0": "aa" * 48, "1": "bb" * 48}}},
    )
    claims = Claims(
        tee=Tee.NITRO,
        measurement=b"\xaa" * 48,
        report_data=b"",
        debug=False,
        measurements={"PCR0": b"\xaa" * 48, "PCR1": b"\xbb" * 48, "PCR2": b"\xcc" * 48},
    )
    assert nitro.matches_claims(claims)
    assert not nitro.matches_claims(replace(claims, measurements={"PCR0": b"\xaa" * 48}))
    assert rec.matches_claims(claims)  # no nitro entry published: nothing to compare
    assert record().created_at == T0 and record().source_commit == COMMIT


def test_approver_set_validation() -> None:
    with pytest.raises(ValueError):
        ApproverSet(3, {"a": b"\x01" * 32, "b": b"\x02" * 32})
    with pytest.raises(ValueError):
        ApproverSet(0, {"a": b"\x01" * 32})
    with pytest.raises(ValueError):
        ApproverSet.from_mapping({"threshold": 1, "approvers": {"a": "zz"}})


def test_cli_keygen_sign_approve_verify(tmp_path: Path) -> None:
    models = ensure_model()
    build = tmp_path / "build.json"
    assert (
        runner.invoke(app, ["release", "build", "--model-dir", str(models), "--out", str(build)]).exit_code
        == 0
    )
    assert (
        runner.invoke(app, ["release", "measure", "--build", str(build), "--tee", "simulated"]).exit_code == 0
    )
    for name in ("release", "alice", "bob", "carol"):
        res = runner.invoke(app, ["release", "keygen", "--out", str(tmp_path / f"{name}.key")])
        assert res.exit_code == 0, res.output
    assert (tmp_path / "release.key").stat().st_mode & 0o777 == 0o600
    assert runner.invoke(app, ["release", "keygen", "--out", str(tmp_path / "release.key")]).exit_code == 2
    approvers = tmp_path / "approvers.yaml"
    approvers.write_text(
        yaml.safe_dump(
            {
                "threshold": 2,
                "approvers": {
                    n: (tmp_path / f"{n}.key.pub").read_text().strip() for n in ("alice", "bob", "carol")
                },
            }
        )
    )
    rel = tmp_path / "release.json"
    res = runner.invoke(
        app,
        ["release", "sign", "--build", str(build), "--version", "1.2.0", "--commit", COMMIT,
         "--key", str(tmp_path / "release.key"), "--out", str(rel), "--time", "2026-11-26T12:00:00Z"],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    verify = ["release", "verify", "--release", str(rel), "--release-key", str(tmp_path / "release.key.pub")]
    assert runner.invoke(app, [*verify, "--build", str(build)]).exit_code == 0
    res = runner.invoke(app, [*verify, "--approvers", str(approvers)])
    assert res.exit_code == 1 and "release.approvals_missing" in res.output
    for name in ("alice", "carol"):
        res = runner.invoke(
            app,
            [
                "release",
                "approve",
                "--release",
                str(rel),
                "--name",
                name,
                "--key",
                str(tmp_path / f"{name}.key"),
            ],
        )
        assert res.exit_code == 0, res.output
    res = runner.invoke(app, [*verify, "--approvers", str(approvers), "--build", str(build)])
    assert res.exit_code == 0, res.output
    assert "approved by alice, carol" in res.output
    # a different build is refused
    other = tmp_path / "other.json"
    doc = json.loads(build.read_text())
    doc["measurements"]["simulated"]["measurement"] = "00" * 48
    other.write_text(json.dumps(doc))
    assert runner.invoke(app, [*verify, "--build", str(other)]).exit_code == 1
    # tampering is refused
    doc = json.loads(rel.read_text())
    doc["record"]["version"] = "1.2.1"
    rel.write_text(json.dumps(doc))
    res = runner.invoke(app, verify)
    assert res.exit_code == 1 and "release.bad_signature" in res.output
