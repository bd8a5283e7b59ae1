"""Write a run's outputs: ``results.json``, ``results.md`` (markdown tables) and PNG plots (matplotlib Agg)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

PLOTS = ("latency_vs_corpus.png", "latency_vs_concurrency.png", "recall_vs_threshold.png")


def _f(value: Any, digits: int = 1) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "NO"
    if isinstance(value, int) or (isinstance(value, float) and abs(value) >= 1000):
        return f"{value:,.0f}"
    if isinstance(value, float) and 0 < abs(value) < 1:
        return f"{value:.{max(digits, 2)}g}" if abs(value) < 0.1 else f"{value:.{max(digits, 2)}f}"
    return f"{value:.{digits}f}"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|",
            *("| " + " | ".join(row) + " |" for row in rows), ""]


def markdown(results: dict[str, Any]) -> str:
    """The results as markdown: per corpus size, per concurrency, recall vs threshold, baselines and ratios."""
    env, params = results["environment"], results["params"]
    lines = [f"# kato-cluster bench — {params['workload']} workload", "",
             f"{results['timestamp']} · {env['cpu_model']} · {env['cores']} cores · "
             f"{(env['memory_bytes'] or 0) / 2**30:.0f} GiB · {env['shards']} shards · Python {env['python']} · "
             f"ray {env['versions'].get('ray')} · commit {(env['git_commit'] or 'unknown')[:10]} · "
             f"load: Ray tasks ({params['load_generator']['mode']}, hosts "
             f"{', '.join(params['load_generator']['task_hosts'])})", "", "## Per corpus size", ""]
    lowest = params["concurrency"][0]
    rows = []
    for size in results["sizes"]:
        first, ref = size["predictions"][0], size.get("reference", {})
        rows.append([_f(size["patterns"]), _f(size["ingest"]["patterns_per_s"]), _f(first["p50_ms"]),
                     _f(first["p95_ms"]), _f(first["p99_ms"]),
                     _f(max(p["queries_per_s"] for p in size["predictions"])),
                     _f(size["observe"]["p50_ms"]), _f(size["learn"]["p50_ms"]),
                     _f(size["memory"]["index_bytes_per_pattern"], 0), _f(ref.get("p50_ms")),
                     _f(ref.get("speedup_p50")) + ("×" if ref else ""), _f(ref.get("agree"))])
    lines += _table(["patterns", "ingest patterns/s", f"predict p50 ms (c={lowest})", "p95 ms", "p99 ms",
                     "max queries/s", "observe p50 ms", "learn p50 ms", "index B/pattern", "reference ms",
                     "speed-up", "agree"], rows)
    lines += ["## Predictions by concurrency", ""]
    rows = [[_f(size["patterns"]), str(p["concurrency"]), _f(p["p50_ms"]), _f(p["p95_ms"]), _f(p["p99_ms"]),
             _f(p["queries_per_s"]), _f(p["throughput_rps"]), _f(p["observe"]["p50_ms"]), _f(p["mean_predictions"])]
            for size in results["sizes"] for p in size["predictions"]]
    lines += _table(["patterns", "concurrency", "p50 ms", "p95 ms", "p99 ms", "queries/s", "HTTP req/s",
                     "observe p50 ms", "predictions/query"], rows)
    recall = results["recall"]
    lines += [f"## Recall vs threshold ({recall['corpus_patterns']:,} near-duplicates, {recall['queries']} "
              "queries; truth: exact Jaccard ≥ threshold)", ""]
    rows = [[f"{p['threshold']:.2f}", _f(p["truth_pairs"]), _f(p["recall"], 3), _f(p.get("minhash_lsh_recall"), 3),
             _f(p["exact_path_recall"], 3), _f(p["p50_ms"]), _f(p.get("minhash_lsh_p50_ms"), 3)]
            for p in recall["curve"]]
    lines += _table(["threshold", "truth pairs", "cluster minhash recall", "MinHashLSH recall", "exact path recall",
                     "cluster minhash p50 ms", "MinHashLSH query p50 ms"], rows)
    lines += ["## Baselines and ratios", ""]
    rows = [[name.replace("_", " "), _f(value, 2)] for name, value in results["ratios"].items()]
    lsh = results.get("minhash_lsh")
    if lsh:
        rows += [["MinHashLSH insert patterns/s (precomputed signatures)", _f(lsh["insert_per_s"])],
                 ["datasketch MinHash signatures/s", _f(lsh["signatures_per_s_datasketch"])],
                 ["MinHashLSH query p50 ms", _f(lsh["p50_ms"], 3)]]
    if "reference" in results:
        ref = results["reference"]
        rows += [["reference engine patterns/s (per-pattern loop)", _f(ref["patterns_per_s"])],
                 ["reference answers equal the cluster's", f"{_f(ref['agree'])} ({ref['agreeing_queries']}/"
                                                           f"{ref['queries']} queries)"]]
    lines += _table(["figure", "value"], rows)
    return "\n".join(lines)


def plots(results: dict[str, Any], out: Path) -> list[Path]:
    """Latency vs corpus size, latency vs concurrency, recall vs threshold."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = results["sizes"]
    paths = [out / name for name in PLOTS]

    fig, ax = plt.subplots(figsize=(6, 4))
    xs = [s["patterns"] for s in sizes]
    for key in ("p50_ms", "p95_ms", "p99_ms"):
        ax.plot(xs, [s["predictions"][0][key] for s in sizes], marker="o", label=f"cluster {key[:3]}")
    if all("reference" in s for s in sizes):
        ax.plot(xs, [s["reference"]["p50_ms"] for s in sizes], marker="s", linestyle="--", label="reference p50")
    ax.set(xscale="log", yscale="log", xlabel="patterns", ylabel="predictions latency (ms)",
           title=f"Latency vs corpus size (concurrency {sizes[0]['predictions'][0]['concurrency']})")
    ax.legend()
    fig.tight_layout()
    fig.savefig(paths[0], dpi=100)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 4))
    for s in sizes:
        cs = [p["concurrency"] for p in s["predictions"]]
        ax.plot(cs, [p["p50_ms"] for p in s["predictions"]], marker="o", label=f"p50, {s['patterns']:,} patterns")
        ax.plot(cs, [p["p99_ms"] for p in s["predictions"]], marker="x", linestyle=":",
                label=f"p99, {s['patterns']:,} patterns")
    ax.set(xlabel="concurrent clients (Ray tasks)", ylabel="predictions latency (ms)",
           title="Latency vs concurrency")
    ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(paths[1], dpi=100)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 4))
    curve = results["recall"]["curve"]
    ts = [p["threshold"] for p in curve]
    ax.plot(ts, [p["recall"] for p in curve], marker="o", label='cluster ["minhash"]')
    if all("minhash_lsh_recall" in p for p in curve):
        ax.plot(ts, [p["minhash_lsh_recall"] for p in curve], marker="s", label="datasketch MinHashLSH")
    ax.plot(ts, [p["exact_path_recall"] for p in curve], marker="^", linestyle="--", label="cluster exact path")
    ax.set(xlabel="threshold (truth: exact Jaccard ≥ threshold)", ylabel="recall", ylim=(0, 1.05),
           title="Recall vs threshold")
    ax.legend()
    fig.tight_layout()
    fig.savefig(paths[2], dpi=100)
    plt.close(fig)
    return paths


def write_outputs(results: dict[str, Any], out: Path) -> list[Path]:
    """``results.json``, ``results.md`` and the plots in ``out`` (created if needed)."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=2, sort_keys=False) + "\n")
    (out / "results.md").write_text(markdown(results) + "\n")
    return [out / "results.json", out / "results.md", *plots(results, out)]
