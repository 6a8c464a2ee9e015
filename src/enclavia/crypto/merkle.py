"""RFC 9162 (RFC 6962) Merkle tree hashing and proofs: pure functions over leaf hashes.

* leaf hash ``SHA-256(0x00 || leaf_input)``, interior node ``SHA-256(0x01 || left || right)``, the
  empty tree ``SHA-256("")``; the split ``k`` is the largest power of two smaller than ``n``
  (section 2.1.1).
* inclusion proofs: ``PATH`` (2.1.3.1) and its verification (2.1.3.2);
* consistency proofs: ``PROOF``/``SUBPROOF`` (2.1.4.1) and verification (2.1.4.2).

Verification also enforces two rules that transparency-dev/merkle applies on top of the bare RFC
algorithms (see tests/assets/vectors/merkle/SOURCE.md): a leaf hash must be 32 bytes, and a consistency
proof from size 0 is refused (there is nothing to be consistent with). Every refusal is an
:class:`InclusionProofError` or :class:`ConsistencyProofError`; callers cannot mistake one for the other.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence

from enclavia.errors import ConsistencyProofError, InclusionProofError

HASH_LEN = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()


def leaf_hash(leaf_input: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + leaf_input).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """Largest power of two strictly smaller than n (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


def root_from_hashes(hashes: Sequence[bytes]) -> bytes:
    """MTH over leaves given by their leaf hashes (any n, including 0)."""
    n = len(hashes)
    if n == 0:
        return EMPTY_ROOT
    # Fold bottom-up; an odd node at a level is carried up unchanged, which gives the RFC split.
    level = list(hashes)
    while len(level) > 1:
        nxt = [node_hash(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            nxt.append(level[-1])
        level = nxt
    return level[0]


def mth(leaves: Sequence[bytes]) -> bytes:
    """MTH over leaf inputs."""
    return root_from_hashes([leaf_hash(x) for x in leaves])


def inclusion_path(index: int, hashes: Sequence[bytes]) -> list[bytes]:
    """PATH(m, D[n]): audit path for leaf ``index`` in the tree of ``len(hashes)`` leaves."""
    n = len(hashes)
    if not 0 <= index < n:
        raise ValueError("leaf index out of range")
    return _path(index, hashes, 0, n)


def _path(m: int, hashes: Sequence[bytes], lo: int, hi: int) -> list[bytes]:
    n = hi - lo
    if n == 1:
        return []
    k = _split(n)
    if m < k:
        return [*_path(m, hashes, lo, lo + k), root_from_hashes(hashes[lo + k : hi])]
    return [*_path(m - k, hashes, lo + k, hi), root_from_hashes(hashes[lo : lo + k])]


def consistency_path(first: int, hashes: Sequence[bytes]) -> list[bytes]:
    """PROOF(m, D[n]) for ``first`` = m <= n = ``len(hashes)``; empty when m == n."""
    n = len(hashes)
    if not 0 < first <= n:
        raise ValueError("consistency proof needs 0 < first <= second")
    return _subproof(first, hashes, 0, n, True)


def _subproof(m: int, hashes: Sequence[bytes], lo: int, hi: int, whole: bool) -> list[bytes]:
    n = hi - lo
    if m == n:
        return [] if whole else [root_from_hashes(hashes[lo:hi])]
    k = _split(n)
    if m <= k:
        return [*_subproof(m, hashes, lo, lo + k, whole), root_from_hashes(hashes[lo + k : hi])]
    return [*_subproof(m - k, hashes, lo + k, hi, False), root_from_hashes(hashes[lo : lo + k])]


# -- verification (RFC 9162 2.1.3.2 and 2.1.4.2) -------------------------------------------------


def _check_hashes(values: Sequence[bytes], err: type[InclusionProofError | ConsistencyProofError]) -> None:
    if not all(isinstance(v, bytes) and len(v) == HASH_LEN for v in values):
        raise err("proof element is not a 32-byte hash")


def root_from_inclusion(index: int, tree_size: int, leaf: bytes, path: Sequence[bytes]) -> bytes:
    """The root that ``path`` proves ``leaf`` (a leaf hash) into; raises if the path cannot fit."""
    if len(leaf) != HASH_LEN:
        raise InclusionProofError("leaf hash must be 32 bytes")
    if not 0 <= index < tree_size:
        raise InclusionProofError("leaf index out of range")
    _check_hashes(path, InclusionProofError)
    fn, sn, r = index, tree_size - 1, leaf
    for p in path:
        if sn == 0:
            raise InclusionProofError("inclusion proof too long")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise InclusionProofError("inclusion proof too short")
    return r


def verify_inclusion(index: int, tree_size: int, leaf: bytes, path: Sequence[bytes], root: bytes) -> None:
    """Raise InclusionProofError unless ``leaf`` (a leaf hash) is at ``index`` in the tree with ``root``."""
    if not hmac.compare_digest(root_from_inclusion(index, tree_size, leaf, path), root):
        raise InclusionProofError()


def verify_consistency(
    first: int, second: int, first_root: bytes, second_root: bytes, path: Sequence[bytes]
) -> None:
    """Raise ConsistencyProofError unless tree ``second_root`` (size ``second``) extends ``first_root``."""
    if first <= 0:
        raise ConsistencyProofError("no consistency proof from an empty tree")
    if first > second:
        raise ConsistencyProofError("first tree is larger than the second")
    _check_hashes(path, ConsistencyProofError)
    if first == second:
        if path:
            raise ConsistencyProofError("proof between equal sizes must be empty")
        if not hmac.compare_digest(first_root, second_root):
            raise ConsistencyProofError("same size, different roots: the log forked")
        return
    if not path:
        raise ConsistencyProofError("empty consistency proof")
    nodes = list(path)
    if first & (first - 1) == 0:  # exact power of two: the old root is the first node
        nodes.insert(0, first_root)
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = nodes[0]
    for c in nodes[1:]:
        if sn == 0:
            raise ConsistencyProofError("consistency proof too long")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0 or not hmac.compare_digest(fr, first_root) or not hmac.compare_digest(sr, second_root):
        raise ConsistencyProofError()
