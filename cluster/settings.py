"""Runtime settings: command-line options override environment variables (``KATO_*``) override defaults."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

ENV_PREFIX = "KATO_"


@dataclass
class Settings:
    data_dir: str = "./data"
    store: str | None = None  # chdb:///path or http(s)://host:port; default: embedded chdb under data_dir
    redis: str | None = None  # redis://...; default: an embedded redis-server under data_dir
    shards: int = 2
    host: str = "127.0.0.1"
    port: int = 8000
    ingress: str = "haproxy"  # "haproxy": Serve's HAProxy in front of the replicas; "proxy": Serve's proxy actor
    service_name: str = "kato"
    session_ttl: int = 3600
    min_replicas: int = 1
    max_replicas: int = 2
    target_ongoing_requests: int = 8
    namespace: str = "kato"
    max_body_bytes: int = 64 * 1024 * 1024
    max_events_per_request: int = 10_000
    max_symbols_per_event: int = 10_000
    max_symbol_length: int = 10_000
    api_keys: str = ""  # "key1=node_a,node_b;key2=*": bearer tokens and the node ids each may use

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = env.get(ENV_PREFIX + f.name.upper())
            if raw is not None and raw != "":
                values[f.name] = int(raw) if f.type in ("int", int) else raw
        values.update({k: v for k, v in overrides.items() if v is not None})
        settings = cls(**values)
        settings.data_dir = os.path.abspath(settings.data_dir)
        return settings

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def shard_store_dsn(self, shard_id: int) -> str:
        """Embedded: one chdb directory per shard (chdb allows one process per directory)."""
        return self.store or f"chdb://{self.data_dir}/shard-{shard_id}/chdb"

    def local_store_dsn(self) -> str:
        return self.store or f"chdb://{self.data_dir}/chdb"
