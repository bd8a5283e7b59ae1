"""Vectorized MinHash signatures and LSH band keys, bit-identical to what KATO stores.

KATO computes ``datasketch.MinHash(num_perm=100)`` (datasketch 1.x: SHA-1 token hash, "legacy" permutations)
over a pattern's tokens and stores ``abs(hash(tuple(band)))`` per band. ``minhash_signatures`` and
``kato_lsh_bands`` reproduce both exactly; ``band_keys`` is our own process-stable band key.
"""

from __future__ import annotations

import functools
import hashlib
import struct
from collections.abc import Iterable, Sequence
from itertools import chain

import numpy as np

__all__ = [
    "MAX_HASH",
    "NUM_BUCKETS",
    "band_keys",
    "effective_bands",
    "estimated_jaccard",
    "home_buckets",
    "kato_lsh_bands",
    "minhash_for_state",
    "minhash_signatures",
    "permutations",
    "sha1_hash32",
    "signatures_from_ids",
    "token_hash_rows",
]

MERSENNE_PRIME = (1 << 61) - 1
MAX_HASH = (1 << 32) - 1
NUM_BUCKETS = 65536

_U64 = np.uint64
_PRIME = _U64(MERSENNE_PRIME)
_MAX = _U64(MAX_HASH)
_BLOCK_PATTERNS = 8192  # patterns reduced together: (8192 x num_perm) accumulator stays cache-sized
_ROUND_MIN_PATTERNS = 64  # below this many still-active patterns per round, finish them one by one
_CHUNK_TOKENS = 1 << 15  # tokens gathered at once for one long pattern


def sha1_hash32(data: bytes) -> int:
    """datasketch's default 32-bit token hash (``datasketch.hashfunc.sha1_hash32``)."""
    return struct.unpack("<I", hashlib.sha1(data).digest()[:4])[0]


@functools.lru_cache(maxsize=32)
def permutations(num_perm: int = 100, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """The legacy-scheme permutation parameters ``(a, b)``, each uint64 of shape (num_perm,), read-only.

    Same draw order as datasketch (1.x, and 2.0 with ``scheme="legacy"``): per permutation one
    ``randint(1, p)`` for ``a`` then one ``randint(0, p)`` for ``b``, so the draws interleave and cannot be
    batched into two ``size=num_perm`` calls.
    """
    if num_perm < 1:
        raise ValueError("num_perm must be positive")
    gen = np.random.RandomState(seed)
    draws = [(gen.randint(1, _PRIME, dtype=np.uint64), gen.randint(0, _PRIME, dtype=np.uint64))
             for _ in range(num_perm)]
    ab = np.array(draws, dtype=np.uint64).T.copy()
    ab.setflags(write=False)
    return ab[0], ab[1]


def _encode(token: str | bytes) -> bytes:
    return token if isinstance(token, bytes) else token.encode("utf8")


def token_hash_rows(tokens: Sequence[str | bytes], num_perm: int = 100, seed: int = 1) -> np.ndarray:
    """Permuted hash row of each token: uint64 array (len(tokens), num_perm), values < 2**32.

    Row ``i`` is what ``MinHash.update(tokens[i].encode('utf8'))`` would min into the signature. Note the
    product ``a * hv`` wraps modulo 2**64 before ``% (2**61 - 1)``: datasketch does this in uint64 numpy
    arithmetic, so the wrapped value (not the exact one) is what KATO stores, and we reproduce it.
    """
    a, b = permutations(num_perm, seed)
    hv = np.fromiter((sha1_hash32(_encode(t)) for t in tokens), dtype=np.uint64, count=len(tokens))
    return ((hv[:, None] * a[None, :] + b[None, :]) % _PRIME) & _MAX


def signatures_from_ids(token_ids: np.ndarray, offsets: np.ndarray, vocab_rows: np.ndarray) -> np.ndarray:
    """Segmented minimum of vocabulary rows: signature of each pattern given as token ids.

    ``token_ids`` is a flat int array indexing ``vocab_rows`` (from ``token_hash_rows``; uint32 rows halve
    memory traffic); pattern ``i`` owns ``token_ids[offsets[i]:offsets[i + 1]]`` (``offsets`` has length
    n + 1 and is non-decreasing). Duplicate ids are harmless. An empty pattern gets all ``MAX_HASH``
    (datasketch's initial values). Returns uint64 (n, num_perm).
    """
    token_ids = np.asarray(token_ids, dtype=np.intp)
    offsets = np.asarray(offsets, dtype=np.int64)
    vocab_rows = np.asarray(vocab_rows)
    n = max(len(offsets) - 1, 0)
    out = np.empty((n, vocab_rows.shape[1]), dtype=np.uint64)
    lens = np.diff(offsets)
    if np.any(lens < 0):
        raise ValueError("offsets must be non-decreasing")
    for lo in range(0, n, _BLOCK_PATTERNS):
        hi = min(n, lo + _BLOCK_PATTERNS)
        out[lo:hi] = _reduce_block(token_ids, offsets[lo:hi], lens[lo:hi], vocab_rows)
    return out


def _reduce_block(token_ids: np.ndarray, starts: np.ndarray, lens: np.ndarray,
                  rows: np.ndarray) -> np.ndarray:
    """Patterns sorted by length (descending); round k mins the k-th token row into the patterns longer than
    k, which are a prefix. The few very long patterns left when the prefix gets small finish one by one."""
    order = np.argsort(-lens, kind="stable")
    s_starts, s_lens = starts[order], lens[order]
    neg_lens = -s_lens  # ascending
    acc = np.full((len(order), rows.shape[1]), np.iinfo(np.uint32).max, dtype=rows.dtype)
    max_len = int(s_lens[0]) if len(s_lens) else 0
    k = 0
    while k < max_len:
        c = int(np.searchsorted(neg_lens, -k, side="left"))  # patterns with len > k
        if c < _ROUND_MIN_PATTERNS:
            break
        part = acc[:c]
        np.minimum(part, rows[token_ids[s_starts[:c] + k]], out=part)
        k += 1
    if k < max_len:
        c = int(np.searchsorted(neg_lens, -k, side="left"))
        for i in range(c):  # long tail only: fewer than _ROUND_MIN_PATTERNS patterns per block
            for lo in range(int(s_starts[i]) + k, int(s_starts[i] + s_lens[i]), _CHUNK_TOKENS):
                hi = min(lo + _CHUNK_TOKENS, int(s_starts[i] + s_lens[i]))
                np.minimum(acc[i], rows[token_ids[lo:hi]].min(axis=0), out=acc[i])
    result = np.empty(acc.shape, dtype=np.uint64)
    result[order] = acc
    return result


def minhash_signatures(token_sets: Sequence[Sequence[str]], num_perm: int = 100, seed: int = 1) -> np.ndarray:
    """MinHash signatures of many token sets: uint64 (n, num_perm), bit-identical to
    ``MinHash(num_perm, seed)`` (datasketch 1.x / 2.0 ``scheme="legacy"``) updated with each token's UTF-8.

    Each distinct token is hashed and permuted once; patterns are reduced with ``signatures_from_ids``.
    """
    n = len(token_sets)
    lens = np.fromiter(map(len, token_sets), dtype=np.int64, count=n)
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(lens, out=offsets[1:])
    flat = list(chain.from_iterable(token_sets))
    vocab = dict.fromkeys(flat)  # distinct tokens, first-occurrence order
    index = {t: i for i, t in enumerate(vocab)}
    token_ids = np.fromiter(map(index.__getitem__, flat), dtype=np.intp, count=len(flat))
    rows = token_hash_rows(list(vocab), num_perm, seed).astype(np.uint32)  # values < 2**32: halve traffic
    return signatures_from_ids(token_ids, offsets, rows)


def minhash_for_state(tokens: Iterable[str], num_perm: int = 100, seed: int = 1) -> np.ndarray:
    """One signature (uint64, shape (num_perm,)) for a query's flattened state tokens (duplicates ignored)."""
    distinct = list(dict.fromkeys(tokens))
    if not distinct:
        permutations(num_perm, seed)  # validates num_perm
        return np.full(num_perm, _MAX, dtype=np.uint64)
    return token_hash_rows(distinct, num_perm, seed).min(axis=0)


def estimated_jaccard(sig: np.ndarray, query_sig: np.ndarray) -> np.ndarray:
    """Fraction of equal positions between each row of ``sig`` (n, P) (or a single (P,) signature, treated
    as n = 1) and ``query_sig`` (P,): datasketch's ``MinHash.jaccard``. Returns float64 (n,)."""
    sig = np.atleast_2d(np.asarray(sig))
    query_sig = np.asarray(query_sig)
    if sig.shape[1] != query_sig.shape[-1]:
        raise ValueError("signatures have different numbers of permutations")
    return np.count_nonzero(sig == query_sig, axis=1) / float(sig.shape[1])


def effective_bands(num_perm: int, bands: int = 20, rows: int = 5) -> int:
    """KATO's rule: if ``bands * rows != num_perm`` use ``num_perm // rows`` bands."""
    if rows < 1:
        raise ValueError("rows must be positive")
    return bands if bands * rows == num_perm else num_perm // rows


def _band_view(signatures: np.ndarray, bands: int, rows: int) -> tuple[np.ndarray, int]:
    sig = np.atleast_2d(np.asarray(signatures)).astype(np.uint64, copy=False)
    nb = effective_bands(sig.shape[1], bands, rows)
    return sig[:, : nb * rows].reshape(sig.shape[0], nb, rows), nb


def _rotl(x: np.ndarray, r: int) -> np.ndarray:
    return (x << _U64(r)) | (x >> _U64(64 - r))


# CPython (3.8+) tuple hash constants, Objects/tupleobject.c.
_XXPRIME_1 = _U64(11400714785074694791)
_XXPRIME_2 = _U64(14029467366897019727)
_XXPRIME_5 = _U64(2870177450012600261)
_PYHASH_MODULUS = _U64((1 << 61) - 1)


def kato_lsh_bands(signatures: np.ndarray, bands: int = 20, rows: int = 5) -> np.ndarray:
    """KATO's stored band hashes, uint64 (n, effective_bands): ``abs(hash(tuple(int(v) for v in band)))``.

    CPython's 64-bit tuple hash (xxHash-style) in wrapping uint64 arithmetic; ``hash(int v)`` for
    ``v >= 0`` is ``v % (2**61 - 1)`` (numpy uint64 scalars hash the same). uint64 because ``abs`` of
    ``-2**63`` is ``2**63`` (KATO's column is ``Array(UInt64)``).
    """
    view, _ = _band_view(signatures, bands, rows)
    reduce_lanes = view.size > 0 and bool(view.max() >= _PYHASH_MODULUS)  # never for MinHash values < 2**32
    with np.errstate(over="ignore"):
        acc = np.full(view.shape[:2], _XXPRIME_5, dtype=np.uint64)
        for j in range(rows):
            lane = view[:, :, j] % _PYHASH_MODULUS if reduce_lanes else view[:, :, j]
            acc += lane * _XXPRIME_2
            acc = _rotl(acc, 31)
            acc *= _XXPRIME_1
        acc += _U64(rows) ^ (_XXPRIME_5 ^ _U64(3527539))
        acc[acc == _U64(0xFFFFFFFFFFFFFFFF)] = _U64(1546275796)
        negative = acc >= _U64(1 << 63)
        acc[negative] = _U64(0) - acc[negative]
    return acc


# Our band key (spec, do not change: keys are persisted and compared across processes and machines):
#   mix64(z)  = splitmix64 finalizer: z ^= z >> 30; z *= 0xBF58476D1CE4E5B9; z ^= z >> 27;
#               z *= 0x94D049BB133111EB; z ^= z >> 31          (all mod 2**64)
#   h         = mix64(BAND_KEY_SEED + GOLDEN * (band + 1))
#   for v in the band's `rows` values, in order:  h = mix64((h ^ v) + GOLDEN)
#   key       = h
_GOLDEN = _U64(0x9E3779B97F4A7C15)
_BAND_KEY_SEED = _U64(0x4B41544F2D4C5348)  # b"KATO-LSH"
_MIX_1 = _U64(0xBF58476D1CE4E5B9)
_MIX_2 = _U64(0x94D049BB133111EB)


def _mix64(z: np.ndarray) -> np.ndarray:
    z = z ^ (z >> _U64(30))
    z = z * _MIX_1
    z = z ^ (z >> _U64(27))
    z = z * _MIX_2
    return z ^ (z >> _U64(31))


def band_keys(signatures: np.ndarray, bands: int = 20, rows: int = 5) -> np.ndarray:
    """Our stable 64-bit band keys, uint64 (n, effective_bands): splitmix64-chained over the band index and
    the band's values (see the spec comment above). Never uses Python's ``hash``."""
    view, nb = _band_view(signatures, bands, rows)
    with np.errstate(over="ignore"):
        band_index = np.arange(1, nb + 1, dtype=np.uint64)
        h = np.broadcast_to(_mix64(_BAND_KEY_SEED + _GOLDEN * band_index), view.shape[:2])
        for j in range(rows):
            h = _mix64((h ^ view[:, :, j]) + _GOLDEN)
    return np.ascontiguousarray(h)


def home_buckets(signatures: np.ndarray, rows: int = 5) -> np.ndarray:
    """A pattern's home bucket: its band-0 key modulo ``NUM_BUCKETS``, int64 (n,)."""
    sig = np.atleast_2d(np.asarray(signatures))
    if sig.shape[1] < rows:
        raise ValueError("signature shorter than one band")
    key0 = band_keys(sig[:, :rows], bands=1, rows=rows)[:, 0]
    return (key0 % _U64(NUM_BUCKETS)).astype(np.int64)
