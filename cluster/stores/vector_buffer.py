"""A node's pending vector buffer (spec §5.3) as a Redis list: ``{kb_id}:vectors:pending``.

Every observation with vectors appends ``[name, sum]`` (after its search); the learn routine indexes the
buffer in order, then trims exactly what it indexed, so a crash between the two re-indexes the same points
(idempotent) and loses none. KATO keeps this buffer in each worker process's memory; here it is one per
node, shared by every ingress replica, and it survives a restart. clear-all deletes it with the node's other
``{kb_id}:*`` keys.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import redis

from cluster.stores.kb_keys import KBKeys
from cluster.stores.key_space import hash_tag

Pending = tuple[str, list[float]]


class VectorBuffer:
    def __init__(self, client: redis.Redis) -> None:
        self.client = client  # decoded or not: entries are JSON either way
        self.tag = hash_tag(client)

    def key(self, kb_id: str) -> str:
        return KBKeys(kb_id, self.tag).pending_vectors

    def append(self, kb_id: str, name: str, vector: Sequence[float]) -> None:
        """Buffer one observation's vector (the float64 sum; JSON keeps every float64 exactly)."""
        self.client.rpush(self.key(kb_id), json.dumps([name, [float(x) for x in vector]]))

    def pending(self, kb_id: str) -> list[Pending]:
        """The buffered vectors, oldest first."""
        entries = self.client.lrange(self.key(kb_id), 0, -1)
        return [(str(name), [float(x) for x in vector]) for name, vector in map(json.loads, entries)]

    def has_pending(self, kb_id: str) -> bool:
        return bool(self.client.exists(self.key(kb_id)))

    def trim(self, kb_id: str, count: int) -> None:
        """Remove the oldest ``count`` entries (those a flush indexed); later appends stay."""
        if count > 0:
            self.client.ltrim(self.key(kb_id), count, -1)

    def drop(self, kb_id: str) -> None:
        self.client.delete(self.key(kb_id))
