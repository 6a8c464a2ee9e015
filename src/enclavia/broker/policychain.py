"""Signed policy history: every revision the broker installs is a signed link in a chain.

Signed body (canonical JSON, sorted keys, no whitespace)::

    {"content": <YAML text>, "policy_id": ..., "prev": <digest of revision - 1, or 64 zeros>, "revision": n}

    digest    = SHA-256(body)                                  (hex)
    signature = Ed25519(broker key, "enclavia-policy-revision-v1\\x00" || body)

The broker key is the one its key store holds (wrapped by the file key or the PKCS#11 token), the same key
that signs attestation tokens and ledger checkpoints, so nobody with write access to the database alone can
produce a revision. ``verify_chain`` is the one check every reader uses (the broker at start and when
another worker moved the head, ``enclavia audit verify``): the rows must be revisions 1..n with no gap, each
signature must verify, each ``prev`` must be the digest of the row before, and the content must parse to a
policy of that revision and id. The broker uses only a verified revision, never the stored text as such.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final, NoReturn

from enclavia.crypto.signing import SigningKey, verify_ed25519
from enclavia.errors import (
    EnclaviaError,
    InvalidPublicKeyError,
    PolicyChainBrokenError,
    SignatureInvalidError,
    StoreTamperedError,
)
from enclavia.policy.document import Policy, parse_policy

POLICY_CONTEXT: Final = b"enclavia-policy-revision-v1\x00"
GENESIS: Final = "0" * 64


def _canonical(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


@dataclass(frozen=True)
class SignedRevision:
    revision: int
    policy_id: str
    content: str
    prev_digest: str
    signature: str = ""

    def body(self) -> bytes:
        return _canonical(
            {
                "content": self.content,
                "policy_id": self.policy_id,
                "prev": self.prev_digest,
                "revision": self.revision,
            }
        )

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.body()).hexdigest()

    @classmethod
    def from_row(cls, row: Any) -> SignedRevision:
        return cls(
            revision=int(row.revision),
            policy_id=str(row.policy_id),
            content=str(row.source),
            prev_digest=row.prev_digest or "",
            signature=row.signature or "",
        )


def sign_revision(key: SigningKey, policy: Policy, prev_digest: str) -> SignedRevision:
    unsigned = SignedRevision(policy.revision, policy.policy_id, policy.source, prev_digest)
    signature = key.sign(POLICY_CONTEXT + unsigned.body()).hex()
    return SignedRevision(policy.revision, policy.policy_id, policy.source, prev_digest, signature)


@dataclass(frozen=True)
class VerifiedRevision:
    signed: SignedRevision
    policy: Policy

    @property
    def revision(self) -> int:
        return self.signed.revision

    @property
    def digest(self) -> str:
        return self.signed.digest


def verify_link(row: SignedRevision, public_key: bytes, *, prev: VerifiedRevision | None) -> VerifiedRevision:
    """Check one revision against the verified one before it (None: it must be revision 1)."""
    # 1. Position: the next revision number, linked to the digest of the one before.
    want_revision = 1 if prev is None else prev.revision + 1
    want_prev = GENESIS if prev is None else prev.digest
    if row.revision != want_revision:
        raise PolicyChainBrokenError(f"policy revision {want_revision} missing")
    if not hmac.compare_digest(row.prev_digest.encode(), want_prev.encode()):
        raise PolicyChainBrokenError(f"policy revision {row.revision} does not follow its predecessor")
    # 2. Signature by the broker key over exactly these bytes.
    try:
        verify_ed25519(public_key, POLICY_CONTEXT + row.body(), bytes.fromhex(row.signature))
    except (SignatureInvalidError, InvalidPublicKeyError, ValueError):
        raise PolicyChainBrokenError(f"policy revision {row.revision} is not signed by the broker") from None
    # 3. The signed content is a policy of that revision and id.
    try:
        policy = parse_policy(row.content)
    except EnclaviaError:
        raise PolicyChainBrokenError(f"policy revision {row.revision} does not parse") from None
    if policy.revision != row.revision or policy.policy_id != row.policy_id:
        raise PolicyChainBrokenError(f"policy revision {row.revision} content names another revision")
    return VerifiedRevision(row, policy)


def verify_chain(rows: Sequence[SignedRevision], public_key: bytes) -> list[VerifiedRevision]:
    """Verify a whole history (rows in revision order); ``PolicyChainBrokenError`` at the first break."""
    out: list[VerifiedRevision] = []
    for row in rows:
        out.append(verify_link(row, public_key, prev=out[-1] if out else None))
    return out


class PolicyGuard:
    """The broker's view of its policy history: only verified revisions, never below the high-water mark.

    ``load`` verifies the whole stored history once (at start); ``at`` is called by every decision with
    the revision the database says is in force: equal to the verified head, it answers from memory (an
    edit of the stored text changes nothing); higher, the new rows are verified link by link from the head
    (another worker applied them); lower, or any break, and the guard is broken for good: every later
    decision raises the same ``PolicyChainBrokenError`` (an operator repairs the store and restarts; the
    broker never falls back to the stored text).
    """

    def __init__(self, public_key: bytes, on_break: Callable[[StoreTamperedError], None]) -> None:
        self._public_key = public_key
        self._on_break = on_break
        self._lock = threading.Lock()
        self.head: VerifiedRevision | None = None
        self.floor = 0
        self.broken: StoreTamperedError | None = None

    def state(self) -> tuple[int, str] | None:
        head = self.head
        return None if head is None else (head.revision, head.digest)

    def fail(self, error: StoreTamperedError) -> NoReturn:
        with self._lock:
            first = self.broken is None
            if first:
                self.broken = error
        if first:
            self._on_break(error)
        raise self.broken or error

    def check(self) -> None:
        if self.broken is not None:
            raise self.broken

    def load(self, rows: Sequence[SignedRevision], floor: int) -> None:
        self.check()
        try:
            chain = verify_chain(rows, self._public_key)
        except PolicyChainBrokenError as err:
            self.fail(err)
        self.floor = max(self.floor, floor)
        head = chain[-1] if chain else None
        if (head.revision if head else 0) < self.floor:
            self.fail(PolicyChainBrokenError(f"policy history ends below revision {self.floor}, seen before"))
        self.head = head

    def at(
        self, revision: int, fetch: Callable[[int, int], Sequence[SignedRevision]]
    ) -> VerifiedRevision | None:
        """The verified revision ``revision`` (the one the store says is in force); ``fetch(lo, hi)`` reads
        stored rows lo..hi. None while no policy is installed."""
        self.check()
        head = self.head
        current = head.revision if head else 0
        if revision == current:
            return head
        if revision < max(current, self.floor):
            self.fail(PolicyChainBrokenError(f"policy head moved back below revision {current}"))
        error: PolicyChainBrokenError | None = None
        with self._lock:
            head = self.head
            try:
                for row in fetch((head.revision if head else 0) + 1, revision):
                    head = verify_link(row, self._public_key, prev=head)
                if head is None or head.revision != revision:
                    raise PolicyChainBrokenError(f"policy revision {revision} missing")
            except PolicyChainBrokenError as err:
                error = err
            else:
                self.head = head
        if error is not None:
            self.fail(error)
        return head

    def accept(self, verified: VerifiedRevision) -> None:
        """A revision this process signed and committed."""
        with self._lock:
            if self.head is None or verified.revision > self.head.revision:
                self.head = verified
