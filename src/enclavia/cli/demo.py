"""`make demo`: start the simulated enclave and host, send one encrypted prediction, stop everything."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from enclavia.cli.core import dev_policy_text


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_healthy(url: str, proc: subprocess.Popen[bytes], timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit("host exited during start-up")
        try:
            if httpx.get(url + "/healthz", timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit("host did not become healthy")


def _sample_features() -> dict[str, float]:
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer()
    return {str(n): float(v) for n, v in zip(data.feature_names, data.data[0], strict=True)}


def main() -> None:
    from enclavia.client.sdk import Client
    from enclavia.enclave.boot import EnclaveConfig, load_models, manifest_for
    from enclavia.policy.document import parse_policy
    from enclavia.tee.simulated import DEV_WARNING, init_platform_key

    model_dir = Path(os.environ.get("ENCLAVIA_MODEL_DIR", "build/models")).resolve()
    with tempfile.TemporaryDirectory(prefix="enclavia-demo-") as tmp:
        home = Path(tmp)
        print(f"== enclavia demo (state in {home})")
        print(f"   {DEV_WARNING}")
        pub = init_platform_key(home / "sim")
        manifest = manifest_for(EnclaveConfig(model_dir, home / "sim"), load_models(model_dir))
        policy = parse_policy(dev_policy_text(manifest.digest().hex(), pub.hex()))
        port = _free_port()
        url = f"http://127.0.0.1:{port}"
        env = {**os.environ, "ENCLAVIA_HOME": str(home)}
        log = (home / "serve.log").open("wb")
        cmd = [
            sys.executable,
            "-m",
            "enclavia.cli.main",
            "serve",
            "--listen",
            f"127.0.0.1:{port}",
            "--model-dir",
            str(model_dir),
            "--state-dir",
            str(home),
        ]
        proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            _wait_healthy(url, proc)
            print(f"== host up at {url}; enclave is a separate process behind {home}/enclave.sock")
            with Client(url, policy) as client:
                enclave = client.attest()
                claims = enclave.result.claims
                print("== attestation verified before sending anything:")
                print(f"   tee               {enclave.result.tee} (dev profile only)")
                print(f"   evidence signed   by the pinned simulated platform key {pub.hex()[:16]}...")
                print("   nonce             fresh, 32 bytes, matched")
                print("   report_data       = SHA-512(nonce, key config, signing key, manifest): matched")
                print(
                    f"   measurement       {enclave.result.measurement[:32]}... allowed by "
                    f"{enclave.result.policy_id} rev {enclave.result.policy_revision}"
                )
                print(f"   debug             {claims.debug}")
                print(f"   model digest      {dict(enclave.bundle.manifest.models)}")
                result = client.predict("clinical-risk", _sample_features())
            print("== encrypted prediction (OHTTP + binary HTTP, HPKE X25519/AES-256-GCM), decrypted here:")
            print(f"   class {result['class']} with probability {result['probability']:.4f}")
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
            log.close()
        print("== stopped host and enclave")


if __name__ == "__main__":
    main()
