"""Learned patterns as Arrow rows of ``kato.patterns_data`` (spec §3.5 plus the home bucket)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa

from schema.learning import LearnedPattern

NUM_PERM = 100
NUM_BANDS = 20


def _list(item: pa.DataType) -> pa.DataType:
    return pa.list_(pa.field("item", item, nullable=False))


# Column order = ClickHouse column order (timestamps excluded: they default to now()). Nullability matches
# what ClickHouse returns, so batches read back from either engine carry exactly this schema.
PATTERN_SCHEMA = pa.schema([
    pa.field("kb_id", pa.string(), nullable=False),
    pa.field("name", pa.string(), nullable=False),
    pa.field("pattern_data", _list(_list(pa.string())), nullable=False),
    pa.field("length", pa.uint32(), nullable=False),
    pa.field("token_set", _list(pa.string()), nullable=False),
    pa.field("token_count", pa.uint32(), nullable=False),
    pa.field("minhash_sig", _list(pa.uint32()), nullable=False),
    pa.field("lsh_bands", _list(pa.uint64()), nullable=False),
    pa.field("first_token", pa.string(), nullable=False),
    pa.field("last_token", pa.string(), nullable=False),
    pa.field("bucket", pa.uint32(), nullable=False),
])
PATTERN_COLUMNS: tuple[str, ...] = tuple(PATTERN_SCHEMA.names)
INDEX_SCHEMA = pa.schema([PATTERN_SCHEMA.field(n) for n in ("kb_id", "name", "pattern_data", "bucket")])
"""The columns a shard's index is built from: what a shard reads when it loads its range (the MinHash
signature and band columns, most of a row's bytes, stay on disk)."""


def _fixed_lists(matrix: np.ndarray, item: pa.DataType) -> pa.Array:
    n, width = matrix.shape
    offsets = pa.array(np.arange(0, (n + 1) * width, width, dtype=np.int32))
    values = pa.array(np.ascontiguousarray(matrix).reshape(-1), type=item)
    return pa.ListArray.from_arrays(offsets, values, type=_list(item))


def pattern_table(kb_id: str, patterns: Sequence[LearnedPattern]) -> pa.Table:
    """One row per pattern with every column: MinHash over the sorted distinct tokens, KATO's band hashes,
    and the home bucket (from ``schema.minhash``)."""
    from schema.minhash import home_buckets, kato_lsh_bands, minhash_signatures

    token_sets = [sorted(set(p.symbols)) for p in patterns]
    n = len(patterns)
    if n:
        signatures = minhash_signatures(token_sets, num_perm=NUM_PERM, seed=1)
        bands = kato_lsh_bands(signatures, bands=NUM_BANDS, rows=NUM_PERM // NUM_BANDS)
        buckets = home_buckets(signatures)
    else:
        signatures = np.zeros((0, NUM_PERM), dtype=np.uint64)
        bands = np.zeros((0, NUM_BANDS), dtype=np.uint64)
        buckets = np.zeros(0, dtype=np.int64)
    columns = [
        pa.array([kb_id] * n, type=pa.string()),
        pa.array([p.name for p in patterns], type=pa.string()),
        pa.array([p.events for p in patterns], type=PATTERN_SCHEMA.field("pattern_data").type),
        pa.array([p.length for p in patterns], type=pa.uint32()),
        pa.array(token_sets, type=PATTERN_SCHEMA.field("token_set").type),
        pa.array([len(t) for t in token_sets], type=pa.uint32()),
        _fixed_lists(signatures.astype(np.uint32), pa.uint32()),
        _fixed_lists(bands.astype(np.uint64), pa.uint64()),
        pa.array([p.first_token for p in patterns], type=pa.string()),
        pa.array([p.last_token for p in patterns], type=pa.string()),
        pa.array(buckets.astype(np.uint32), type=pa.uint32()),
    ]
    return pa.Table.from_arrays(columns, schema=PATTERN_SCHEMA)
