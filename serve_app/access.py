"""Optional API keys (bearer tokens) restricted to node ids, and request payload limits.

Without keys the service is open, as KATO is. With keys, every request except the service description,
health, docs and the OpenAPI schema needs ``Authorization: Bearer <key>``, and a key may only touch the
node ids it lists (``*`` for all).
"""

from __future__ import annotations

import hmac
from contextvars import ContextVar
from dataclasses import dataclass

from schema.api import ObservationData
from schema.errors import Forbidden, Unauthorized, Unprocessable

OPEN_PATHS = frozenset({"/", "/health", "/docs", "/openapi.json", "/redoc", "/docs/oauth2-redirect"})
ALL_NODES = "*"

allowed_nodes: ContextVar[frozenset[str] | None] = ContextVar("allowed_nodes", default=None)


def parse_api_keys(spec: str) -> dict[str, frozenset[str]]:
    """``"k1=a,b;k2=*"`` → ``{"k1": {"a", "b"}, "k2": {"*"}}``."""
    keys: dict[str, frozenset[str]] = {}
    for part in filter(None, (p.strip() for p in spec.split(";"))):
        key, _, nodes = part.partition("=")
        if not key or not nodes:
            raise ValueError(f"api key entry {part!r} must look like key=node1,node2 or key=*")
        keys[key.strip()] = frozenset(n.strip() for n in nodes.split(",") if n.strip())
    return keys


def nodes_for_token(keys: dict[str, frozenset[str]], authorization: str | None) -> frozenset[str]:
    """The node ids a request may use; raises Unauthorized for a missing or unknown key."""
    if not authorization or not authorization.lower().startswith("bearer "):
        raise Unauthorized("missing bearer token: send 'Authorization: Bearer <api key>'")
    token = authorization[7:].strip()
    for key, nodes in keys.items():
        if hmac.compare_digest(key.encode(), token.encode()):
            return nodes
    raise Unauthorized("unknown API key")


def restrict_to(nodes: frozenset[str] | None) -> None:
    """Set the node ids the current request may use (None: all)."""
    allowed_nodes.set(nodes)


def authorize_node(node_id: str) -> None:
    """Raise Forbidden if the current request's key may not use this node."""
    nodes = allowed_nodes.get()
    if nodes is not None and ALL_NODES not in nodes and node_id not in nodes:
        raise Forbidden(f"this API key may not access node {node_id!r}")


@dataclass(frozen=True)
class PayloadLimits:
    max_events_per_request: int = 10_000
    max_symbols_per_event: int = 10_000
    max_symbol_length: int = 10_000

    def check_symbols(self, strings: list[str], where: str) -> None:
        if len(strings) > self.max_symbols_per_event:
            raise Unprocessable(f"{where}: {len(strings)} symbols in one event exceed the limit of "
                                f"{self.max_symbols_per_event}")
        longest = max((len(s) for s in strings), default=0)
        if longest > self.max_symbol_length:
            raise Unprocessable(f"{where}: a symbol of {longest} characters exceeds the limit of "
                                f"{self.max_symbol_length}")

    def check_observation(self, observation: ObservationData, where: str = "observation") -> None:
        self.check_symbols(observation.strings, where)
        if len(observation.vectors) > self.max_symbols_per_event:
            raise Unprocessable(f"{where}: {len(observation.vectors)} vectors exceed the limit of "
                                f"{self.max_symbols_per_event}")

    def check_sequence(self, observations: list[ObservationData]) -> None:
        if len(observations) > self.max_events_per_request:
            raise Unprocessable(f"{len(observations)} observations exceed the limit of "
                                f"{self.max_events_per_request} per request")
        for i, observation in enumerate(observations):
            self.check_observation(observation, f"observations[{i}]")
