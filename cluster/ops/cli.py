"""The ``kato-cluster`` command: run the service, inspect it, and benchmark it."""

from __future__ import annotations

import typer

app = typer.Typer(help="kato-cluster: a KATO-compatible pattern memory and prediction service on Ray.",
                  no_args_is_help=True)

DATA_DIR = typer.Option("./data", "--data-dir", help="Where the embedded engines keep their data.")


@app.command()
def up(port: int = typer.Option(None, help="HTTP port of the KATO API [env KATO_PORT; default 8000]."),
       host: str = typer.Option(None, help="Interface to bind [env KATO_HOST; default 127.0.0.1, loopback]."),
       shards: int = typer.Option(None, help="Number of shard actors (bucket ranges) [env KATO_SHARDS; default 2]."),
       data_dir: str = typer.Option(None, "--data-dir", help="Where the embedded engines keep their data "
                                                             "[env KATO_DATA_DIR; default ./data]."),
       store: str = typer.Option(None, help="ClickHouse DSN (http://host:8123); default: embedded chdb."),
       redis: str = typer.Option(None, help="Redis URL; default: an embedded redis-server with AOF."),
       ingress: str = typer.Option(None, help="How HTTP reaches the replicas: haproxy (Serve's HAProxy) or proxy "
                                              "(Serve's proxy actor) [env KATO_INGRESS; default haproxy]."),
       redis_layout: str = typer.Option(None, "--redis-layout",
                                        help="Where Redis keeps per-pattern values: kato (KATO's keys) or compact "
                                             "(about 14 B per pattern; compact:65536 or compact:1048576 buckets for "
                                             "KBs past 15M patterns) [env KATO_REDIS_LAYOUT; default kato]."),
       join: str = typer.Option(None, "--join", metavar="HOST:PORT",
                                help="Add this machine to the Ray cluster whose head is at HOST:PORT (started by "
                                     "`ray start --head`, as ray_config.yaml's head) instead of starting a service."),
       detach: bool = typer.Option(False, help="Run in the background; return once /health answers (with --join: "
                                               "once this node runs).")) -> None:
    """Start the engines, a local Ray cluster, the shards and the HTTP API. Ctrl-C stops everything."""
    from cluster.ops.launcher import run_service, start_detached
    from schema.errors import LauncherError, SettingsError
    from schema.settings import Settings

    settings = Settings.from_env(port=port, host=host, shards=shards, data_dir=data_dir, store=store, redis=redis,
                                 ingress=ingress, redis_layout=redis_layout)
    if join is not None:
        if any(option is not None for option in (port, host, shards)):
            typer.echo("error: --join takes no --port, --host or --shards: the cluster's service has them", err=True)
            raise typer.Exit(2)
        _join(settings, join, detach)
        return
    try:
        if detach:
            process = start_detached(settings)
            typer.echo(f"kato-cluster is serving on http://{settings.host}:{settings.port} (pid {process.pid}); "
                       f"stop it with: kato-cluster down --data-dir {settings.data_dir}")
        else:
            run_service(settings, on_ready=typer.echo)
    except (LauncherError, SettingsError) as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(1) from error


def _join(settings, address: str, detach: bool) -> None:
    from cluster.ops.join import run_join, start_joined_detached
    from schema.errors import LauncherError

    try:
        if detach:
            process = start_joined_detached(settings, address)
            typer.echo(f"this machine joined the Ray cluster at {address} (pid {process.pid}); "
                       f"leave with: kato-cluster down --data-dir {settings.data_dir}")
        else:
            code = run_join(settings, address, on_ready=typer.echo)
            if code:
                raise typer.Exit(code)
    except LauncherError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(1) from error


@app.command()
def down(data_dir: str = DATA_DIR) -> None:
    """Stop the detached service (or joined node) that owns DATA_DIR (it stops everything it started)."""
    from cluster.ops.launcher import stop_detached
    from schema.errors import LauncherError

    try:
        pid = stop_detached(data_dir)
    except LauncherError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(1) from error
    typer.echo(f"stopped the process that owned {data_dir} (pid {pid})")


@app.command()
def status(url: str = typer.Option("http://127.0.0.1:8000", help="Base URL of a running service.")) -> None:
    """Nodes and the shards each holds, bucket ranges, patterns per shard and KB, index and process memory,
    store and Redis health."""
    import requests

    try:
        health = requests.get(f"{url}/health", timeout=5).json()
        body = requests.get(f"{url}/status", timeout=5).json()
    except requests.RequestException as error:
        typer.echo(f"error: no service answers at {url} ({error.__class__.__name__})", err=True)
        raise typer.Exit(1) from error
    typer.echo(f"service {body.get('base_processor_id')} at {url}: {health.get('status')}, "
               f"uptime {body.get('uptime_seconds', 0):.0f} s, active sessions {health.get('active_sessions')}")
    for issue in health.get("issues", []):
        typer.echo(f"  issue: {issue}")
    shards = body.get("processors", {}).get("processors", [])
    _echo_nodes(body.get("nodes", []), shards)
    for shard in shards:
        kbs = ", ".join(f"{kb}={n}" for kb, n in sorted(shard.get("patterns_per_kb", {}).items())) or "empty"
        memory = f", process {shard['rss_bytes'] / 1e6:.0f} MB" if shard.get("rss_bytes") else ""
        typer.echo(f"  {shard['processor_id']} [{shard['node_id']}]: {kbs}; "
                   f"index {shard.get('index_bytes', 0) / 1e6:.1f} MB{memory}")
        log = shard.get("log")
        if log:
            failing = f"; last flush error: {log['last_flush_error']}" if log.get("last_flush_error") else ""
            typer.echo(f"    write-ahead log: {log['rows']} rows waiting, flush lag {log['flush_lag_seconds']:.1f} s, "
                       f"{log['rows_flushed']} rows flushed in {log['store_inserts']} inserts{failing}")
    for name, ok in body.get("engines", {}).items():
        typer.echo(f"  {name}: {'ok' if ok else 'DOWN'}")
    typer.echo(f"  Redis layout: {body.get('redis_layout', 'kato')}")
    _echo_shard_map(body.get("shard_map"))


def _echo_nodes(nodes: list[dict], shards: list[dict]) -> None:
    """Each Ray node (those holding no shard too) with the shards it holds; in-process shards last."""
    held: dict[str, list[str]] = {}
    for shard in shards:
        held.setdefault(shard.get("ray_node") or "", []).append(shard["processor_id"])
    for node in nodes:
        state = "alive" if node["alive"] else "DEAD"
        typer.echo(f"  node {node['node_id']} ({node['address']}, {state}, {node['cpus']:g} CPUs, "
                   f"{node['memory_bytes'] / 1e9:.1f} GB): {', '.join(held.pop(node['node_id'], [])) or 'no shards'}")
    for node_id, names in sorted(held.items()):
        typer.echo(f"  node {node_id or 'this process'}: {', '.join(names)}")


def _echo_shard_map(shard_map: dict | None) -> None:
    from cluster.ops.admin_client import describe

    if not shard_map:
        return
    saved = shard_map["map"]
    typer.echo(f"  shard map version {saved['version']}: {len(saved['ranges'])} shards")
    if saved.get("target") is not None:
        moving = ", ".join(f"{lo}-{hi}" for lo, hi in saved["moving"])
        typer.echo(f"    resharding to {len(saved['target'])} shards, buckets moving: {moving}")
    if shard_map.get("progress"):
        typer.echo(f"    last reshard: {describe(shard_map['progress'])}")


URL = typer.Option("http://127.0.0.1:8000", "--url", help="Base URL of the running service.")


@app.command()
def load(file: str = typer.Argument(..., help="JSON lines or Parquet: events, emotives, metadata, frequency."),
         node: str = typer.Option(..., "--node", help="Node id whose knowledge base receives the patterns."),
         url: str = URL,
         batch: int = typer.Option(5000, help="Rows the server commits at a time (each batch atomically).")) -> None:
    """Bulk-learn patterns from FILE as one streamed body (resumable: run it again after an interruption and it
    sends only the rows not committed yet; shows progress and the rate)."""
    from cluster.ops.transfer import load as run_load

    report = run_load(url.rstrip("/"), file, node, batch)
    resumed = f", resumed after row {report.resumed_from}" if report.resumed_from else ""
    typer.echo(f"loaded {report.rows} rows ({report.learns} learns, {report.new_patterns} new patterns, "
               f"{report.skipped_rows} skipped) in {report.seconds:.1f} s = {report.rate:,.0f} rows/s{resumed}")


@app.command()
def export(node: str = typer.Option(..., "--node", help="Node id to export."),
           file: str = typer.Argument(..., help="Output file: .jsonl or .parquet."),
           url: str = URL) -> None:
    """Write every pattern of NODE to FILE (the inverse of load)."""
    from cluster.ops.transfer import export as run_export

    typer.echo(f"exported {run_export(url.rstrip('/'), node, file)} patterns to {file}")


@app.command("import-kato")
def import_kato(clickhouse: str = typer.Option(..., "--clickhouse", help="KATO's ClickHouse (http://host:8123 "
                                                                         "or chdb:///path)."),
                redis_url: str = typer.Option(..., "--redis", help="KATO's Redis URL."),
                nodes: list[str] = typer.Option(None, "--node", help="Only these nodes (repeatable); default all."),
                table: str = typer.Option("kato.patterns_data", help="KATO's patterns table."),
                url: str = URL) -> None:
    """Migrate a KATO 3.x deployment (patterns and {kb_id}:* Redis keys) into this cluster and verify it."""
    import redis

    from cluster.ops.transfer import import_kato as run_import
    from cluster.stores.clickhouse import open_pattern_store

    store = open_pattern_store(clickhouse)
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        reports = run_import(url.rstrip("/"), store, client, nodes or None, table)
    finally:
        store.close()
        client.close()
    failed = 0
    for r in reports:
        failed += not r.verified
        typer.echo(f"{r.kb_id}: {r.patterns} patterns, {r.keys} Redis keys, "
                   f"{'verified' if r.verified else 'CHECKSUM MISMATCH'} (sha1 {r.target_checksum[:12]})")
    if failed:
        raise typer.Exit(1)


@app.command()
def reshard(shards: int = typer.Option(None, "--shards", help="The number of shards to move to."),
            abort: bool = typer.Option(False, "--abort", help="Roll back an interrupted reshard instead."),
            api_key: str = typer.Option(None, "--api-key", envvar="KATO_API_KEY",
                                        help="An API key for all nodes ('*'), when the service has keys."),
            url: str = URL) -> None:
    """Split or merge bucket ranges while the service serves, showing the progress (patterns and bytes moved,
    catch-up lag, write pause at the cut-over)."""
    from cluster.ops import admin_client
    from schema.errors import LauncherError

    if abort == (shards is not None):
        typer.echo("error: give either --shards N or --abort", err=True)
        raise typer.Exit(2)
    try:
        if abort:
            body = admin_client.abort(url.rstrip("/"), api_key)
            typer.echo(f"aborted: the map is back at version {body['map']['version']} "
                       f"with {len(body['map']['ranges'])} shards")
        else:
            admin_client.reshard(url.rstrip("/"), shards, api_key, say=typer.echo)
    except LauncherError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(1) from error


@app.command()
def demo() -> None:
    """Learn a few sequences in-process and print KATO's predictions (no services needed)."""
    from cluster.ops.demo import main

    main()


def _register_bench() -> None:
    from cluster.ops.bench.cli import bench_app

    app.add_typer(bench_app, name="bench")


_register_bench()

if __name__ == "__main__":
    app()
