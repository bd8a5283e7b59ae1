"""JSON schema of ``results.json`` (validated by the tests with ``jsonschema``)."""

from __future__ import annotations

from typing import Any

NUM = {"type": "number"}
COUNT = {"type": "integer", "minimum": 0}
FRACTION = {"type": "number", "minimum": 0, "maximum": 1}
LATENCY = {"type": "object", "required": ["p50_ms", "p95_ms", "p99_ms", "mean_ms", "n"],
           "properties": {"p50_ms": NUM, "p95_ms": NUM, "p99_ms": NUM, "mean_ms": NUM, "n": COUNT}}
INGEST = {"type": "object", "required": ["patterns", "seconds", "patterns_per_s"],
          "properties": {"patterns": COUNT, "seconds": NUM, "patterns_per_s": NUM}}
MEMORY = {"type": "object", "required": ["patterns_added", "index_bytes_added", "index_bytes_per_pattern"],
          "properties": {"patterns_added": COUNT, "index_bytes_added": {"type": "integer"},
                         "index_bytes_per_pattern": NUM}}
LOAD = {"allOf": [LATENCY, {"type": "object",
                            "required": ["concurrency", "throughput_rps", "queries_per_s", "observe",
                                         "mean_predictions"],
                            "properties": {"concurrency": {"type": "integer", "minimum": 1},
                                           "throughput_rps": NUM, "queries_per_s": NUM, "observe": LATENCY,
                                           "mean_predictions": NUM}}]}
REFERENCE = {"allOf": [LATENCY, {"type": "object",
                                 "required": ["queries", "agree", "agreeing_queries", "speedup_p50"],
                                 "properties": {"queries": COUNT, "agree": {"type": "boolean"},
                                                "agreeing_queries": COUNT, "speedup_p50": NUM}}]}
SIZE = {"type": "object", "required": ["patterns", "node_id", "ingest", "memory", "predictions", "observe", "learn"],
        "properties": {"patterns": COUNT, "node_id": {"type": "string"}, "ingest": INGEST, "memory": MEMORY,
                       "predictions": {"type": "array", "minItems": 1, "items": LOAD},
                       "observe": LATENCY, "learn": LATENCY, "reference": REFERENCE}}
CURVE_POINT = {"type": "object", "required": ["threshold", "recall", "truth_pairs", "exact_path_recall"],
               "properties": {"threshold": FRACTION, "recall": FRACTION, "truth_pairs": COUNT,
                              "exact_path_recall": FRACTION, "minhash_lsh_recall": FRACTION}}
RECALL = {"type": "object",
          "required": ["corpus_patterns", "queries", "truth_threshold", "minhash_pipeline", "exact_path", "curve"],
          "properties": {"corpus_patterns": COUNT, "queries": COUNT, "truth_threshold": FRACTION,
                         "minhash_pipeline": FRACTION, "exact_path": FRACTION, "minhash_lsh": FRACTION,
                         "curve": {"type": "array", "minItems": 1, "items": CURVE_POINT}}}
LSH = {"type": "object", "required": ["recall", "insert_per_s", "p50_ms", "signatures_per_s_datasketch", "curve"],
       "properties": {"recall": FRACTION, "insert_per_s": NUM, "p50_ms": NUM, "signatures_per_s_datasketch": NUM,
                      "curve": {"type": "array", "minItems": 1}}}
ENVIRONMENT = {"type": "object",
               "required": ["cpu_model", "cores", "memory_bytes", "python", "versions", "git_commit", "shards"],
               "properties": {"cpu_model": {"type": "string"}, "cores": {"type": ["integer", "null"]},
                              "memory_bytes": {"type": ["integer", "null"]}, "python": {"type": "string"},
                              "git_commit": {"type": ["string", "null"]}, "shards": {"type": "integer", "minimum": 1},
                              "versions": {"type": "object",
                                           "required": ["ray", "numpy", "rapidfuzz", "datasketch"]}}}
PREDICTIONS = {"type": "object", "required": ["p50_ms", "p95_ms", "p99_ms", "throughput_rps_max"],
               "properties": {"p50_ms": NUM, "p95_ms": NUM, "p99_ms": NUM, "throughput_rps_max": NUM}}

RESULTS_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "kato-cluster bench results",
    "type": "object",
    "required": ["schema_version", "timestamp", "environment", "params", "sizes", "ingest", "predictions",
                 "observe", "learn", "memory", "recall", "ratios"],
    "properties": {
        "schema_version": {"const": 1},
        "timestamp": {"type": "string"},
        "environment": ENVIRONMENT,
        "params": {"type": "object", "required": ["workload", "patterns", "queries", "concurrency", "seed",
                                                  "load_generator", "workload_params"]},
        "sizes": {"type": "array", "minItems": 1, "items": SIZE},
        "ingest": INGEST, "predictions": PREDICTIONS, "observe": LATENCY, "learn": LATENCY, "memory": MEMORY,
        "reference": REFERENCE, "recall": RECALL, "minhash_lsh": LSH,
        "ratios": {"type": "object", "additionalProperties": NUM},
    },
}
