"""Redis key names of one knowledge base, in KATO's layout (spec §3.6): every key starts with ``{kb_id}:``
(after the deployment's hash tag on a Redis Cluster: ``cluster.stores.key_space``)."""

from __future__ import annotations

GLOBAL_TOTAL_SYMBOLS = "global:total_symbols_in_patterns_frequencies"
GLOBAL_PATTERN_FREQUENCIES = "global:total_pattern_frequencies"
GLOBAL_UNIQUE_PATTERNS = "global:total_unique_patterns"
_GLOB_SPECIAL = frozenset("*?[]\\")


def glob_escape(text: str) -> str:
    """Escape Redis glob metacharacters so ``text`` matches itself literally in SCAN MATCH."""
    return "".join("\\" + c if c in _GLOB_SPECIAL else c for c in text)


class KBKeys:
    def __init__(self, kb_id: str, tag: str = "") -> None:
        """``tag``: the deployment's hash tag (``cluster.stores.key_space.hash_tag``), empty on a single Redis."""
        self.kb_id = kb_id
        self.prefix = p = f"{tag}{kb_id}:"
        self.symbols_freq = f"{p}symbols:freq"
        self.symbols_pmf = f"{p}symbols:pmf"
        self.total_symbols = f"{p}{GLOBAL_TOTAL_SYMBOLS}"
        self.pattern_frequencies = f"{p}{GLOBAL_PATTERN_FREQUENCIES}"
        self.unique_patterns = f"{p}{GLOBAL_UNIQUE_PATTERNS}"
        self.applied_batches = f"{p}bulk:applied_batches"  # batch ids of /bulk/learn applied (at most once)
        self.bulk_loads = f"{p}bulk:loads"  # load id -> rows of a streamed load committed so far
        self.pending_vectors = f"{p}vectors:pending"  # the node's vectors observed since its last learn

    def frequency(self, name: str) -> str:
        return f"{self.prefix}frequency:{name}"

    def emotives(self, name: str) -> str:
        return f"{self.prefix}emotives:{name}"

    def metadata(self, name: str) -> str:
        return f"{self.prefix}metadata:{name}"

    def affinity(self, symbol: str) -> str:
        return f"{self.prefix}affinity:{symbol}"

    def symbol_to_patterns(self, symbol: str) -> str:
        return f"{self.prefix}symbol_to_patterns:{symbol}"

    def intrinsic(self, kind: str, name: str) -> str:
        return f"{self.prefix}{kind}:{name}"

    def match_all(self) -> str:
        return glob_escape(self.prefix) + "*"
