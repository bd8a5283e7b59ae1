"""``kato-cluster bench``: the distributed benchmark runner, with the baselines side by side.

Modules: ``workloads`` (deterministic corpora and queries), ``client`` (HTTP calls), ``load`` (Ray load
tasks), ``phases`` (ingest, latency, observe/learn, recall, memory), ``baselines`` (reference engine,
datasketch MinHashLSH, exact Jaccard truth), ``report`` (results.json/results.md/plots), ``check``
(``--check`` thresholds), ``schema`` (JSON schema of results.json), ``runner`` (orchestration), ``cli``.
"""
