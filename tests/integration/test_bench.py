"""``kato-cluster bench`` end to end at a tiny size: one run (its own service through the launcher), then the
outputs, the baselines and ``--check`` are checked. No timing-dependent assertions."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest

from cluster.ops.bench.check import failed_checks, parse_check
from cluster.ops.bench.report import PLOTS
from cluster.ops.bench.schema import RESULTS_SCHEMA
from cluster.ops.launcher import project_root

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def bench(*args: str, timeout: float = 420) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cluster.ops.bench", "run", *args], cwd=project_root(),
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> tuple[subprocess.CompletedProcess, Path]:
    """One tiny run; its checks hold but one, which is impossible, so it must exit non-zero."""
    out = tmp_path_factory.mktemp("bench-out")
    done = bench("--patterns", "300", "--queries", "10", "--concurrency", "1,2", "--shards", "2", "--seed", "3",
                 "--reference-queries", "4", "--out", str(out),
                 "--check", "predictions.p50_ms>=0", "--check", "predictions.p50_ms<=0")
    return done, out


@pytest.fixture(scope="module")
def results(run) -> dict:
    done, out = run
    assert (out / "results.json").exists(), done.stderr[-3000:]
    return json.loads((out / "results.json").read_text())


def test_impossible_check_fails_the_run_and_names_only_the_failed_threshold(run, results):
    done, _out = run
    assert done.returncode == 1, done.stderr[-3000:]
    assert "check failed: predictions.p50_ms<=0" in done.stderr
    assert "predictions.p50_ms>=0" not in done.stderr


def test_results_follow_the_schema(results):
    jsonschema.validate(results, RESULTS_SCHEMA)
    assert [s["patterns"] for s in results["sizes"]] == [300]
    assert [p["concurrency"] for p in results["sizes"][0]["predictions"]] == [1, 2]
    assert all(p["n"] == 10 for p in results["sizes"][0]["predictions"])
    assert results["environment"]["shards"] == 2
    assert results["params"]["load_generator"]["mode"] == "local"
    assert results["sizes"][0]["memory"]["patterns_added"] == 300
    assert results["sizes"][0]["memory"]["index_bytes_per_pattern"] > 0


def test_the_schema_rejects_a_broken_document(results):
    broken = json.loads(json.dumps(results))
    broken["recall"]["minhash_pipeline"] = 1.5
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, RESULTS_SCHEMA)


def test_reference_engine_agrees_with_the_cluster(results):
    reference = results["sizes"][0]["reference"]
    assert reference["queries"] == 4
    assert reference["agree"] is True, reference["mismatches"]
    assert reference["agreeing_queries"] == 4
    assert results["sizes"][0]["predictions"][0]["mean_predictions"] > 0


def test_recalls_are_fractions(results):
    recall = results["recall"]
    for value in (recall["minhash_pipeline"], recall["minhash_lsh"], results["minhash_lsh"]["recall"]):
        assert isinstance(value, float | int) and not math.isnan(value) and 0.0 <= value <= 1.0
    assert recall["truth_pairs"] >= recall["queries"]  # every query finds at least itself
    assert [p["threshold"] for p in recall["curve"]] == [0.5, 0.6, 0.7, 0.8, 0.9]
    assert all(0.0 <= p["minhash_lsh_recall"] <= 1.0 for p in recall["curve"])
    assert recall["exact_path"] == 1.0  # the exact path returns every near-duplicate (families of 10 < 100)


def test_plots_are_pngs(run):
    _done, out = run
    for name in PLOTS:
        data = (out / name).read_bytes()
        assert data[:8] == PNG_MAGIC and len(data) > 1000, name


def test_markdown_has_the_tables(run, results):
    _done, out = run
    text = (out / "results.md").read_text()
    assert "| patterns | ingest patterns/s |" in text
    assert "\n| 300 | " in text
    assert "## Recall vs threshold" in text and "| 0.70 |" in text
    assert "reference answers equal the cluster's | yes (4/4 queries)" in text


def test_check_against_stored_results(run):
    _done, out = run
    ok = bench("--results", str(out / "results.json"), "--check", "predictions.p50_ms>=0",
               "--check", "recall.minhash_pipeline<=1", timeout=120)
    assert ok.returncode == 0, ok.stderr
    failing = bench("--results", str(out / "results.json"), "--check", "predictions.p50_ms<=0",
                    "--check", "ingest.patterns_per_s>=1e12", "--check", "no.such.metric>=1", timeout=120)
    assert failing.returncode == 1
    assert failing.stderr.count("check failed:") == 3


def test_check_parsing_and_paths(results):
    assert failed_checks(results, [parse_check("sizes.0.ingest.patterns>=300")]) == []
    assert failed_checks(results, [parse_check("sizes.0.reference.agree>=1")])  # booleans are not numbers
    with pytest.raises(ValueError):
        parse_check("predictions.p50_ms<25")
