"""Every setting the project reads, through one reader.

Command-line options and Serve ``args`` override environment variables, which override the defaults. Whatever
the route, a value is cast to its field's declared type here (``"1000"`` from a Serve config becomes ``1000``),
and a value that cannot be read as that type is a ``SettingsError`` naming the setting and where it came from.
``Settings`` holds the runtime's settings (``KATO_*`` variables); ``schema.config.ServerDefaults`` reads KATO's
own variable names (``RECALL_THRESHOLD``, ...) with the same reader.
"""

from __future__ import annotations

import os
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

from schema.errors import SettingsError

ENV_PREFIX = "KATO_"
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})



def _cast(kind: Any, raw: Any) -> Any:
    """``raw`` (a string from the environment, or a value already typed) as ``kind``; ValueError if it is not."""
    optional = typing.get_origin(kind) in (typing.Union, types.UnionType) and type(None) in typing.get_args(kind)
    if optional:
        if raw is None:
            return None
        kind = next(a for a in typing.get_args(kind) if a is not type(None))
    if kind is bool:
        if isinstance(raw, bool):
            return raw
        text = str(raw).strip().lower()
        if text in _TRUE or text in _FALSE:
            return text in _TRUE
        raise ValueError("must be a boolean (true/false, 1/0, yes/no, on/off)")
    if kind is int:
        if isinstance(raw, int) and not isinstance(raw, bool):
            return raw
        text = str(raw).strip()
        if isinstance(raw, (bool, float)) or not text.lstrip("+-").isdigit():
            raise ValueError("must be an integer")
        return int(text)
    if kind is float:
        if isinstance(raw, (int, float)) and not isinstance(raw, bool):
            return float(raw)
        try:
            return float(str(raw).strip())
        except ValueError:
            raise ValueError("must be a number") from None
    if typing.get_origin(kind) is tuple:
        items = raw.split(",") if isinstance(raw, str) else list(raw)
        return tuple(str(item).strip() for item in items if str(item).strip())
    if kind is str:
        return str(raw)
    raise TypeError(f"no reader for settings of type {kind!r}")


def typed_values(cls: type, values: Mapping[str, Any], source: str) -> dict[str, Any]:
    """``values`` (field name → raw value) cast to ``cls``'s field types; unknown names are refused."""
    hints = typing.get_type_hints(cls)
    out: dict[str, Any] = {}
    for name, raw in values.items():
        if name not in hints:
            raise SettingsError(f"{source}: {name!r} is not a setting of {cls.__name__}")
        try:
            out[name] = _cast(hints[name], raw)
        except (TypeError, ValueError) as error:
            message = str(error) if str(error).startswith("must") else f"must be of type {hints[name]}"
            raise SettingsError(f"{source}: {name} {message} (got {raw!r})") from error
    return out


def env_values(cls: type, env: Mapping[str, str] | None, env_name: Callable[[str], str | None]) -> dict[str, Any]:
    """Typed values of ``cls``'s fields found in ``env`` (default ``os.environ``); ``env_name`` maps a field to
    its variable (None: not read from the environment). Empty variables count as unset."""
    env = os.environ if env is None else env
    found: dict[str, Any] = {}
    for f in fields(cls):
        name = env_name(f.name)
        raw = env.get(name) if name else None
        if raw is not None and raw != "":
            found[f.name] = typed_values(cls, {f.name: raw}, f"environment variable {name}")[f.name]
    return found


@dataclass
class Settings:
    data_dir: str = "./data"
    store: str | None = None  # chdb:///path or http(s)://host:port; default: embedded chdb under data_dir
    redis: str | None = None  # redis://...; default: an embedded redis-server under data_dir
    redis_server: str = ""  # the redis-server binary for the embedded Redis; default: found on PATH
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
    haproxy_stats: str = ""  # host:port of HAProxy's statistics page (/stats, no authentication); empty: off
    haproxy_metrics: str = ""  # host:port of HAProxy's Prometheus page (/metrics, no authentication); empty: off
    log_bound_rows: int = 1_000_000  # rows a KB's write-ahead log on one shard may hold before learns get 503
    flush_interval: float = 1.0  # seconds between a shard's flushes of its logs to ClickHouse
    flush_max_rows: int = 20_000  # a shard flushes early once this many rows wait (and inserts at most this many)
    memory_release_seconds: float = 30.0  # while flushes go on, the longest a shard keeps freed memory from the OS
    reshard_chunk_buckets: int = 1024  # buckets a reshard copies per round trip between two shards
    reshard_freeze_ms: int = 3000  # the longest writes into moving buckets wait at a reshard's cut-over
    access_log: bool = False  # Serve's per-request log line in each replica's log file (costs CPU per request)
    redis_layout: str = "kato"  # per-pattern values in KATO's keys, or "compact" (cluster.stores.pattern_layout)

    def flush_policy(self) -> dict[str, Any]:
        """The shards' flush settings, as ``actors.stored_shard.FlushPolicy`` takes them."""
        return {"interval": self.flush_interval, "max_rows": self.flush_max_rows,
                "release_seconds": self.memory_release_seconds}

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """``KATO_<FIELD>`` variables of ``env`` (default ``os.environ``), then ``overrides`` (options, Serve
        ``args``; None means not given), each cast to its field's type."""
        values = env_values(cls, env, lambda name: ENV_PREFIX + name.upper())
        values.update(typed_values(cls, {k: v for k, v in overrides.items() if v is not None}, "option"))
        settings = cls(**values)
        settings.data_dir = os.path.abspath(settings.data_dir)
        return settings

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def shard_dir(self, shard_id: int) -> str:
        """A shard's embedded data directory (its chdb store)."""
        return os.path.join(self.data_dir, f"shard-{shard_id}")

    def shard_store_dsn(self, shard_id: int) -> str:
        """Embedded: one chdb directory per shard (chdb allows one process per directory)."""
        return self.store or f"chdb://{self.shard_dir(shard_id)}/chdb"

    def local_store_dsn(self) -> str:
        return self.store or f"chdb://{self.data_dir}/chdb"
