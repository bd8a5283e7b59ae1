"""Where the service's Redis keys live: KATO's own names on a single Redis; on a Redis Cluster, the same names
behind one hash tag.

The service's atomic steps span keys of several kinds: a learn's commit writes a KB's statistics, its pattern
keys, the shards' write-ahead logs, the shard-map guard and the overlays of every session with a pending observe
on that KB; a session's save writes the session's keys, the KB's pending set and the active index. A Redis
Cluster runs a script or a transaction only over keys of one slot, so on a cluster every key of a deployment
starts with the hash tag ``{kato}`` (``{kato}mykb:frequency:PTRN|…``, ``{kato}kato:session:…``): one slot, one
master (with its replicas for failover). On a single Redis no tag is added, so KATO's tools and fixtures read the
keys by KATO's names.
"""

from __future__ import annotations

from typing import Any

CLUSTER_TAG = "{kato}"
CLUSTER_SCHEMES = ("redis+cluster", "rediss+cluster")


def is_cluster_url(url: str) -> bool:
    """Whether ``url`` names a Redis Cluster (``redis+cluster://host:port`` of any of its nodes)."""
    return url.split("://", 1)[0].lower() in CLUSTER_SCHEMES


def cluster_nodes(url: str) -> tuple[str, list[tuple[str, int]]]:
    """A cluster URL (``redis+cluster://[auth@]host:port[,host:port…][/db]``) as the plain URL of its first node
    and the (host, port) of every node it names."""
    scheme, rest = url.split("://", 1)
    auth, _, hosts = rest.rpartition("@")
    hosts, _, path = hosts.partition("/")
    nodes = []
    for item in hosts.split(","):
        host, _, port = item.strip().rpartition(":")
        nodes.append((host or "127.0.0.1", int(port or 6379)))
    plain = f"{scheme.lower().removesuffix('+cluster')}://{auth + '@' if auth else ''}{nodes[0][0]}:{nodes[0][1]}"
    return plain + (f"/{path}" if path else ""), nodes


def node_url(url: str) -> str:
    """The plain URL of the first node a cluster URL names (what a client of one node, such as the event bus's
    publish/subscribe, connects to: a cluster delivers a message published on any node to every node)."""
    return cluster_nodes(url)[0]


def hash_tag(client: Any) -> str:
    """What the keys of ``client``'s deployment start with: ``{kato}`` on a Redis Cluster, else nothing (a client
    from ``cluster.stores.redis_client.connect`` knows which; any other client is taken for a single server's)."""
    return str(getattr(client, "hash_tag", ""))
