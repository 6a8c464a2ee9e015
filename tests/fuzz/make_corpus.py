"""Write the seed corpus under tests/fuzz/corpus/<target>/ (committed; rerun only to regenerate it).

    .venv/bin/python -m tests.fuzz.make_corpus

For every target in tests/fuzz/targets.py: a few real inputs (``valid-*``: the target must accept them on
replay), real vendor evidence where it exists (``real-*``), hand-made hostile inputs (``attack-*``), and
deterministic mutations of the real ones (``mut-*``, fixed seed). Seeds that involve fresh randomness (HPKE
encapsulations, the fuzz enclave's key) differ from run to run; every version replays the same way.
Vendor evidence comes from tests/assets/vectors (see each SOURCE.md for its provenance).
"""

from __future__ import annotations

import json
import random
import shutil
import uuid
from pathlib import Path

from tests.conftest import VECTORS
from tests.fuzz import targets as t
from tests.tee_vectors import read_evidence

CORPUS = Path(__file__).parent / "corpus"
MUTATIONS = 4


def mutate(data: bytes, rng: random.Random) -> bytes:
    out = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        if not out:
            out += bytes([rng.randrange(256)])
            continue
        op = rng.choice(["flip", "set", "cut", "insert", "delete", "dup"])
        i = rng.randrange(len(out))
        if op == "flip":
            out[i] ^= 1 << rng.randrange(8)
        elif op == "set":
            out[i] = rng.choice([0x00, 0xFF, 0x7F, 0x80, 0x3F, 0x40, rng.randrange(256)])
        elif op == "cut":
            del out[i:]
        elif op == "insert":
            out[i:i] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
        elif op == "delete":
            del out[i : i + rng.randint(1, 8)]
        else:
            out[i:i] = out[i : i + rng.randint(1, 16)]
    return bytes(out)


def _json(doc: object) -> bytes:
    return json.dumps(doc, separators=(",", ":")).encode()


def seeds() -> dict[str, dict[str, bytes]]:
    from enclavia import channel
    from enclavia.attestation import tlog
    from enclavia.attestation.platforms.sevsnp.abi import VCEK_GUID
    from enclavia.attestation.receipt import encode_receipt, issue_receipt
    from enclavia.attestation.release import sign_record
    from enclavia.broker import tokens
    from enclavia.crypto import merkle
    from enclavia.crypto.bhttp import Request, Response, encode_request, encode_response
    from enclavia.crypto.bhttp_stream import encode_content_chunk, encode_response_head, encode_response_tail
    from enclavia.crypto.chunked_ohttp import encapsulate_chunked_request
    from enclavia.crypto.kbs import release_aad, seal_secret
    from enclavia.crypto.ohttp import encapsulate_request, encode_key_configs
    from enclavia.rag.blobstore import encode_op
    from tests.release.helpers import record

    out: dict[str, dict[str, bytes]] = {name: {} for name in t.TARGETS}
    key = t.gateway_key()
    enclave, _ = t.sim_world()
    request = Request(
        "POST", "https", "enclave", "/v1/predict/m", (("content-type", "application/json"),), b"{}"
    )

    bhttp = json.loads((VECTORS / "bhttp" / "rfc9292_examples.json").read_text())["examples"]
    for ex in bhttp:
        kind = "bhttp_request" if "request" in ex["name"] else "bhttp_response"
        out[kind]["valid-" + ex["name"]] = bytes.fromhex(ex["hex"])
    out["bhttp_request"]["valid-ours"] = encode_request(request)
    out["bhttp_response"]["valid-ours"] = encode_response(Response(200, (("x", "y"),), b"ok"))
    out["bhttp_request"]["attack-huge-varint-length"] = b"\x00\x03GET\x05https\x00\x01/\xc0" + b"\xff" * 7

    stream = encode_response_head(200, (("content-type", "text/event-stream"),))
    stream += encode_content_chunk(b"data: 1\n\n") + encode_content_chunk(b"data: 2\n\n")
    out["bhttp_stream"]["valid-stream"] = stream + encode_response_tail((("enclavia-receipt", "x"),))
    out["bhttp_stream"]["attack-no-terminator"] = stream

    ohttp = json.loads((VECTORS / "ohttp" / "rfc9458_appendix_a.json").read_text())
    out["ohttp_key_config"]["valid-rfc9458"] = bytes.fromhex(ohttp["key_config"])
    out["ohttp_key_config"]["valid-list"] = encode_key_configs([key.config])
    out["ohttp_key_config"]["attack-zero-symmetric"] = bytes.fromhex(ohttp["key_config"])[:35] + b"\x00\x00"
    msg, _ = encapsulate_request(key.config, encode_request(request))
    out["ohttp_request"]["valid-ours"] = msg
    out["ohttp_request"]["real-rfc9458"] = bytes.fromhex(ohttp["encapsulated_request"])
    out["ohttp_request"]["attack-low-order-enc"] = msg[:7] + bytes(32) + msg[39:]
    chunked, _ = encapsulate_chunked_request(key.config, encode_request(request), chunk_size=8)
    out["chunked_ohttp_request"]["valid-ours"] = chunked
    out["chunked_ohttp_request"]["attack-no-final-chunk"] = chunked[: len(chunked) // 2]

    out["channel_frame"]["valid-health"] = channel.encode(channel.Kind.HEALTH, b"", b"")
    out["channel_frame"]["valid-attest"] = channel.encode(channel.Kind.ATTEST, b"", b"ab" * 32)
    out["channel_frame"]["valid-gateway"] = channel.encode(channel.Kind.GATEWAY, b"00-" + b"1" * 32, msg)
    out["channel_frame"]["valid-install"] = channel.encode(channel.Kind.INSTALL_SECRET, b"", b"{}")
    out["channel_frame"]["attack-body-len-lies"] = channel.HEADER.pack(1, 2, 0, 1 << 30) + b"x"
    out["channel_frame"]["attack-version"] = channel.HEADER.pack(9, 1, 0, 0)

    out["store_op"]["valid-put"] = encode_op(b"P", "c/" + "ab" * 16, b"ciphertext")
    out["store_op"]["valid-list"] = encode_op(b"L", "c/")
    out["store_op"]["attack-traversal"] = encode_op(b"P", "../../etc/passwd", b"x")
    out["store_op"]["attack-trailing-newline"] = encode_op(b"P", "keyring\n", b"x")

    bundle = enclave.attestation_bundle(t.NONCE)
    out["bundle"]["valid-simulated"] = bundle.encode()
    doc = bundle.to_json()
    out["bundle"]["attack-nan-in-manifest"] = _json(doc).replace(b'"config":{', b'"config":{"x":NaN,', 1)
    out["bundle"]["attack-nested"] = b'{"manifest":' + b"[" * 5000 + b"]" * 5000 + b"}"
    out["manifest"]["valid-simulated"] = _json(doc["manifest"])
    out["manifest"]["attack-infinity"] = _json(doc["manifest"]).replace(
        b'"config":{', b'"config":{"x":Infinity,'
    )
    out["simulated_evidence"]["valid-simulated"] = bundle.evidence
    out["simulated_evidence"]["attack-indefinite-nesting"] = b"\x9f" * 10000

    nitro = VECTORS / "nitro" / "cape-js"
    out["nitro_cose"]["valid-spec"] = (nitro / "spec_attestationDocument.cbor").read_bytes()
    out["nitro_cose"]["real-attestation"] = (nitro / "attestation.bin").read_bytes()
    out["nitro_cose"]["attack-huge-bstr"] = b"\xd2\x84\x5b" + b"\xff" * 8
    snp = VECTORS / "snp"
    out["snp_report"]["valid-trustee"] = (snp / "trustee" / "test-report.bin").read_bytes()
    out["snp_report"]["valid-go-sev-guest"] = (snp / "go-sev-guest" / "attestation.bin").read_bytes()
    out["snp_report"]["valid-virtee-milan"] = (snp / "virtee-sev" / "report_milan.bin").read_bytes()
    vcek = (snp / "trustee" / "test-vcek.der").read_bytes()
    entry = VCEK_GUID.bytes + (48).to_bytes(4, "little") + len(vcek).to_bytes(4, "little")
    out["snp_cert_table"]["valid-vcek"] = entry + bytes(24) + vcek
    out["snp_cert_table"]["attack-offset-overflow"] = (
        uuid.UUID(int=5).bytes + (0xFFFFFFF0).to_bytes(4, "little") + (0x20).to_bytes(4, "little") + bytes(24)
    )
    tdx = VECTORS / "tdx" / "dcap-qvl"
    out["tdx_quote"]["valid-tdx"] = (tdx / "tdx_quote").read_bytes()
    out["tdx_quote"]["valid-near"] = read_evidence(tdx / "near_quote_hex.txt")
    out["tdx_quote"]["real-sgx"] = (tdx / "sgx_quote").read_bytes()
    out["nvidia_report"]["valid-hopper"] = read_evidence(
        VECTORS / "nvidia" / "nvtrust" / "hopperAttestationReport.txt"
    )

    out["policy_yaml"]["valid-dev"] = t.sim_world()[1].source.encode()
    out["policy_yaml"]["valid-production"] = (
        b"policy_id: p\nrevision: 2\nprofile: production\nreference_values:\n"
        b"  nitro:\n    - {name: n, pcrs: {0: '"
        + b"ab" * 48
        + b"', 1: '"
        + b"cd" * 48
        + b"', 2: '"
        + b"ef" * 48
        + b"'}}\n"
    )
    out["policy_yaml"]["attack-deep-nesting"] = b"policy_id: " + b"[" * 600
    out["policy_yaml"]["attack-python-tag"] = b"!!python/object/apply:os.system ['true']"
    out["policy_yaml"]["attack-billion-laughs"] = b"a: &a [x,x,x,x,x,x,x,x,x]\n" + b"".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [{','.join(['*' + chr(97 + i)] * 9)}]\n".encode() for i in range(8)
    )

    claims = tokens.TokenClaims(
        status="affirming",
        tee="simulated",
        measurement="00" * 48,
        policy_id="p",
        policy_revision=1,
        key_config_digest="00" * 32,
        claims={"tee": "simulated", "reference": "good-build", "debug": False},
        iat=1_800_000_000 - 10,
        exp=1_800_000_000 + 50,
        jti="ab" * 16,
        aud="enclavia-kbs",
    )
    good = tokens.issue(t.token_key(), claims)
    out["broker_token"]["valid-eddsa"] = good.encode()
    h, p, _ = good.split(".")
    none = tokens.b64url(
        b'{"alg":"none","kid":"' + tokens.key_id(t.token_key().public_bytes).encode() + b'"}'
    )
    out["broker_token"]["attack-alg-none"] = f"{none}.{p}.".encode()
    out["broker_token"]["attack-null-signature"] = f"{h}.{p}.{tokens.b64url(bytes(64))}".encode()
    out["broker_token"]["attack-non-ascii"] = f"{h}.\u00e9{p[1:]}.{good.split('.')[2]}".encode()

    leaves = [f"leaf-{i}".encode() for i in range(5)]
    hashes = [merkle.leaf_hash(x) for x in leaves]
    sth = tlog.sign_tree_head(t.token_key(), 5, 1_800_000_000_000, merkle.root_from_hashes(hashes))
    out["tlog_sth"]["valid-sth"] = sth.encode()
    out["tlog_sth"]["attack-negative-size"] = sth.encode().replace(b'"tree_size":5', b'"tree_size":-5')
    proof = tlog.InclusionProof(2, 5, tuple(merkle.inclusion_path(2, hashes)))
    out["tlog_proof"]["valid-inclusion"] = _json(proof.to_json())
    out["tlog_proof"]["valid-entry"] = _json(tlog.LogEntry(2, leaves[2]).to_json())
    out["tlog_proof"]["attack-huge-size"] = _json(
        {**proof.to_json(), "tree_size": 2**62, "leaf_index": 2**62 - 1}
    )
    out["signed_release"]["valid-release"] = sign_record(record(), t.token_key()).encode()
    receipt = issue_receipt(
        t.token_key(),
        request_content=b"{}",
        response_content=b"{}",
        route="/v1/predict/m",
        status=200,
        measurement=b"\x01" * 48,
        now=t.AT,
    )
    out["receipt"]["valid-receipt"] = encode_receipt(receipt).encode()
    enc, ct = seal_secret(key.config.encode(), b"k" * 32, release_aad("models/m", 1, 1, "ab" * 16))
    release = {
        "path": "models/m",
        "version": 1,
        "policy_revision": 1,
        "jti": "ab" * 16,
        "enc": t.b64(enc),
        "ciphertext": t.b64(ct),
    }
    out["key_release"]["real-release"] = _json(release)
    out["key_release"]["attack-bool-version"] = _json({**release, "version": True})
    return out


def main() -> None:
    rng = random.Random(20260115)
    if CORPUS.exists():
        shutil.rmtree(CORPUS)
    for target, files in seeds().items():
        directory = CORPUS / target
        directory.mkdir(parents=True)
        for name, data in files.items():
            (directory / name).write_bytes(data)
            if name.startswith(("valid-", "real-")):
                for i in range(MUTATIONS if len(files) < 4 else 2):
                    (directory / f"mut-{name.split('-', 1)[1]}-{i}").write_bytes(mutate(data, rng))
    print(f"wrote {sum(1 for _ in CORPUS.rglob('*') if _.is_file())} files under {CORPUS}")


if __name__ == "__main__":
    main()
