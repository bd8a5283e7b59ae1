"""Key names as the tests read them: KATO's names, behind the deployment's hash tag on a Redis Cluster."""

from __future__ import annotations

from cluster.stores.kb_keys import KBKeys
from cluster.stores.key_space import hash_tag


def kb_key(client: object, kb_id: str, rest: str) -> str:
    """A KB's key by what follows ``{kb_id}:`` in KATO's name."""
    return KBKeys(kb_id, hash_tag(client)).prefix + rest
