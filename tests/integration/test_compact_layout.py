"""The compact Redis layout (``cluster.stores.pattern_layout``) against a real redis-server: the same statistics as
KATO's layout for any sequence of learns, its keys and their encoding, the bytes it saves, and the guard that keeps
a deployment in the layout its data was written in."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cluster.stores.key_space import hash_tag
from cluster.stores.pattern_layout import COMPACT, KATO, LAYOUT_KEY, claim_layout
from cluster.stores.redis_kb import RedisKB
from schema.errors import SettingsError
from schema.learning import LearnedPattern, make_pattern
from tests.integration.redis_keys import kb_key
from tests.integration.test_redis_kb import _learns, dump

pytestmark = pytest.mark.integration
REDIS_KINDS = ("single", "cluster")
_ids = itertools.count()
PER_PATTERN = ("frequency:", "emotives:", "metadata:", "pf:", "pe:", "pm:")


def shared_keys(client, kb_id: str) -> dict[str, object]:
    """The KB's keys other than the per-pattern ones (the same in both layouts)."""
    return {k: v for k, v in dump(client, kb_id).items() if not k.startswith(PER_PATTERN)}


def view(rk: RedisKB, kb_id: str, names: list[str]) -> tuple[object, ...]:
    stats = rk.corpus_stats(kb_id, names, ["a", "b", "c"], ["a", "b"])
    emotives = {n: stats.emotives.get(n, []) for n in names}
    return ({n: rk.pattern_info(kb_id, n) for n in names}, stats.frequencies, emotives, stats.pmf,
            stats.total_symbols, stats.total_unique_patterns, stats.total_pattern_frequencies, stats.affinity)


@pytest.mark.parametrize("layout", [COMPACT, "compact:65536"])
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(learns=_learns(), persistence=st.integers(1, 6), chunk=st.integers(1, 5))
def test_compact_layout_keeps_what_katos_keeps(redis_client, layout, learns, persistence, chunk):
    """Learned one by one in KATO's layout and in batches in a compact one: every statistic and every pattern's
    frequency, emotives and metadata read the same."""
    n = next(_ids)
    kato_kb, compact_kb = f"lk{n}_kato", f"lc{n}_kato"
    kato, compact = RedisKB(redis_client), RedisKB(redis_client, layout=layout)
    created = [kato.learn(kato_kb, p, persistence) for p in learns]
    batched = []
    for i in range(0, len(learns), chunk):
        batched += compact.learn_batch(compact_kb, learns[i:i + chunk], persistence)
    assert batched == created
    names = sorted({p.name for p in learns}) + ["0" * 40]  # and one pattern neither knows
    assert view(compact, compact_kb, names) == view(kato, kato_kb, names)
    assert shared_keys(redis_client, compact_kb) == shared_keys(redis_client, kato_kb)
    assert not any(k.startswith(PER_PATTERN[:3]) for k in dump(redis_client, compact_kb))


def test_compact_keys_are_bucket_hashes_of_binary_fields(redis_client, make_kb_id):
    kb = make_kb_id()
    rk = RedisKB(redis_client, layout=COMPACT)
    plain = make_pattern([["a", "b"], ["c"]])
    rich = make_pattern([["x"], ["y"]], [{"joy": 0.5}], [{"tag": "t"}])
    assert plain is not None and rich is not None
    rk.learn_batch(kb, [plain, rich, LearnedPattern(plain.name, plain.events, repeats=4)], 5)
    raw = redis_client.hgetall(kb_key(redis_client, kb, f"pf:{plain.name[:3]}"))
    field = bytes.fromhex(plain.name[3:19])
    assert {k.encode("utf-8", "surrogateescape"): v for k, v in raw.items()}[field] == "5"
    assert redis_client.object("encoding", kb_key(redis_client, kb, f"pf:{plain.name[:3]}")) == "listpack"
    assert redis_client.exists(kb_key(redis_client, kb, f"pe:{plain.name[:3]}")) == (plain.name[:3] == rich.name[:3])
    assert rk.pattern_info(kb, plain.name) == {"frequency": 5, "emotives": [], "metadata": {}}
    assert rk.pattern_info(kb, rich.name) == {"frequency": 1, "emotives": [{"joy": 0.5}], "metadata": {"tag": ["t"]}}
    assert rk.pattern_info(kb, "f" * 40) is None
    wider = RedisKB(redis_client, layout="compact:65536")
    wider.learn(kb + "w", plain, 5)
    assert redis_client.hlen(kb_key(redis_client, kb + "w", f"pf:{plain.name[:4]}")) == 1
    assert wider.pattern_info(kb + "w", plain.name) == {"frequency": 1, "emotives": [], "metadata": {}}


def test_compact_layout_takes_a_tenth_of_the_bytes(redis_client, make_kb_id):
    """20,000 patterns (five per bucket, so the buckets' own overhead still shows): the per-pattern keys of the
    compact layout take less than a tenth of KATO's."""
    patterns = [make_pattern([[f"s{i}"], [f"t{i % 97}"]]) for i in range(20_000)]
    used = {}
    for layout in (KATO, COMPACT):
        kb = make_kb_id(layout)
        rk = RedisKB(redis_client, layout=layout)
        for lo in range(0, len(patterns), 5000):
            rk.learn_batch(kb, patterns[lo:lo + 5000], 5)  # type: ignore[arg-type]
        prefix = kb_key(redis_client, kb, "")
        keys = [k for k in redis_client.scan_iter(match=prefix.replace("{", "\\{").replace("}", "\\}") + "*",
                                                  count=5000) if k[len(prefix):].startswith(PER_PATTERN)]
        used[layout] = sum(redis_client.memory_usage(k, samples=0) for k in keys) / len(patterns)
    assert used[COMPACT] * 10 < used[KATO], used


def test_a_deployment_keeps_the_layout_its_data_was_written_in(redis_client):
    tag = hash_tag(redis_client)  # on a Redis Cluster, the deployment's slot
    claim_layout(redis_client, COMPACT, tag)
    claim_layout(redis_client, COMPACT, tag)  # again: the same layout
    with pytest.raises(SettingsError, match="'compact' layout; redis_layout is 'kato'"):
        claim_layout(redis_client, KATO, tag)
    with pytest.raises(SettingsError, match="'compact' layout; redis_layout is 'compact:65536'"):
        claim_layout(redis_client, "compact:65536", tag)  # other buckets: the fields would be read wrongly
    with pytest.raises(SettingsError, match="must be one of kato, compact, compact:65536, compact:1048576"):
        claim_layout(redis_client, "sparse", tag)
    redis_client.flushdb()
    RedisKB(redis_client).learn("old_kato", make_pattern([["a"], ["b"]]), 5)  # type: ignore[arg-type]
    with pytest.raises(SettingsError, match="'kato' layout"):  # data from before layouts were recorded is KATO's
        claim_layout(redis_client, COMPACT, tag)
    assert redis_client.get(tag + LAYOUT_KEY) == KATO


def test_imported_kato_keys_land_in_the_compact_layout(redis_client, make_kb_id):
    kb = make_kb_id()
    rk = RedisKB(redis_client, layout=COMPACT)
    name, other = "ab" * 20, "cd" * 20
    rk.import_keys(kb, {f"frequency:{name}": ("string", "3"), f"emotives:{name}": ("string", '[{"joy": 1.0}]'),
                        f"metadata:{name}": ("string", "{}"), f"frequency:{other}": ("string", "1"),
                        f"emotives:{other}": ("string", "[]"), "symbols:freq": ("hash", {"a": "2"})})
    assert rk.pattern_info(kb, name) == {"frequency": 3, "emotives": [{"joy": 1.0}], "metadata": {}}
    assert rk.pattern_info(kb, other) == {"frequency": 1, "emotives": [], "metadata": {}}
    assert set(dump(redis_client, kb)) == {"pf:aba", "pe:aba", "pf:cdc", "symbols:freq"}
