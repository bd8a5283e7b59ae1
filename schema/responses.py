"""Response bodies of the KATO HTTP API (spec §1.5, §1.10, §2.5, §3.7, §4.2, §4.3), as pydantic models.

They document the answers in the OpenAPI schema (``/docs``) and let tests check real answers; the service never
builds or validates them: routes return its JSON-ready dicts as they are, so no number changes type and the
prediction path pays nothing. Models whose bodies carry fields beyond the documented ones (KATO's leaked helper
fields, additions of this project) allow extra keys.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, RootModel

Events = list[list[str]]


class _Open(BaseModel):
    """A body that may carry more keys than documented."""

    model_config = ConfigDict(extra="allow")


# ------------------------------------------------------------------------------------------------ sessions
class SessionConfig(_Open):
    """The effective session configuration (spec §3.3): the session's value where set, else the server default."""

    max_pattern_length: int = Field(description="Auto-learn length in events (0: off).")
    persistence: int = Field(description="Emotive entries kept per pattern.")
    recall_threshold: float = Field(description="Inclusive lower bound on a prediction's similarity.")
    indexer_type: str = Field(description="Vector indexer name (VI, LSH, ANNOY, FAISS).")
    max_predictions: int = Field(description="Predictions returned at most.")
    sort_symbols: Any = Field(description="Echoed as set (a boolean unless set otherwise; no runtime effect).")
    process_predictions: bool = Field(description="Whether observes compute predictions.")
    use_token_matching: bool = Field(description="Token (true) or character (false) similarity.")
    fuzzy_token_threshold: float | None = Field(default=None, description="Fuzzy token matching; only when set.")
    stm_mode: str = Field(description="CLEAR or ROLLING.")
    rank_sort_algo: str = Field(description="Prediction field the predictions are ranked by.")
    affinity_emotive: str | None = Field(default=None, description="Emotive weighting matches; only when set.")
    filter_pipeline: list[str] = Field(description="Candidate filter stages, in order.")
    length_min_ratio: float = Field(description="Length filter: lower ratio.")
    length_max_ratio: float = Field(description="Length filter: upper ratio.")
    jaccard_threshold: float = Field(description="Jaccard filter threshold.")
    jaccard_min_overlap: int = Field(description="Jaccard filter: symbols in common at least.")
    minhash_threshold: float = Field(description="MinHash filter threshold.")
    minhash_bands: int = Field(description="MinHash bands.")
    minhash_rows: int = Field(description="MinHash rows per band.")
    minhash_num_hashes: int = Field(description="MinHash signature length.")
    bloom_false_positive_rate: float = Field(description="Bloom filter false-positive rate.")
    max_candidates_per_stage: int = Field(description="Candidates a filter stage passes on at most.")
    enable_filter_metrics: bool = Field(description="Whether filter stages record metrics.")


class SessionResponse(BaseModel):
    """``POST /sessions`` and ``GET /sessions/{id}``."""

    session_id: str = Field(description="session-<uuid4 hex>-<ms epoch>.")
    node_id: str = Field(description="The node whose patterns the session reads and writes.")
    created_at: str = Field(description="ISO 8601 timestamp.")
    expires_at: str = Field(description="ISO 8601 timestamp.")
    ttl_seconds: int = Field(description="Session TTL (on GET: the remaining seconds).")
    metadata: dict[str, Any] = Field(description="The metadata given at creation.")
    session_config: SessionConfig = Field(description="Effective configuration.")


class SessionCount(BaseModel):
    active_session_count: int = Field(description="Live sessions of the cluster.")


class SessionExists(BaseModel):
    exists: bool = Field(description="Whether the session is live.")
    expired: bool = Field(description="Whether it expired and is not yet reaped.")
    session_id: str


class SessionDeleted(BaseModel):
    status: Literal["deleted"]
    session_id: str


class ConfigResponse(BaseModel):
    """``GET /sessions/{id}/config``."""

    session_id: str
    config: SessionConfig = Field(description="Effective configuration.")


class StatusMessage(BaseModel):
    """``POST /sessions/{id}/config``."""

    status: Literal["okay"]
    message: str = Field(description="Configuration updated.")
    session_id: str


class SessionExtended(BaseModel):
    status: Literal["extended"]
    session_id: str
    ttl_seconds: int = Field(description="Seconds from now until the session expires.")


# ------------------------------------------------------------------------------------------- observations
class ObservationResult(BaseModel):
    """``POST /sessions/{id}/observe`` (spec §4.2)."""

    status: Literal["okay"]
    session_id: str
    processor_id: str = Field(description="The session's node id.")
    stm_length: int = Field(description="STM events after the auto-learn check.")
    time: int = Field(description="The session's observation counter.")
    unique_id: str = Field(description="obs-<hex>, the observation's id.")
    auto_learned_pattern: str | None = Field(description="PTRN|<hash> when the observe auto-learned a pattern.")


class SequenceItemResult(BaseModel):
    status: Literal["okay"]
    sequence_position: int = Field(description="Index of the item in the request.")
    stm_length: int = Field(description="STM events after the item.")
    time: int = Field(description="The session's observation counter.")
    unique_id: str = Field(description="The item's unique_id, else seq-obs-<hex>.")
    auto_learned_pattern: str | None = Field(description="PTRN|<hash> when the item auto-learned a pattern.")


class ObservationSequenceResult(BaseModel):
    """``POST /sessions/{id}/observe-sequence`` (spec §1.10)."""

    status: Literal["completed"]
    processor_id: str = Field(description="The session's node id.")
    observations_processed: int
    initial_stm_length: int
    final_stm_length: int
    results: list[SequenceItemResult] = Field(description="One entry per item, in order.")
    auto_learned_patterns: list[str] = Field(description="Names learned (explicitly or auto), '' for nothing.")
    final_learned_pattern: str | None = Field(description="Name of the learn_at_end learn, if one ran.")
    isolated: bool = Field(description="Echo of clear_stm_between.")


class StmResponse(BaseModel):
    stm: Events = Field(description="Short-term memory, one list of symbols per event.")
    session_id: str
    length: int = Field(description="Number of events.")


class PerceptData(BaseModel):
    """The last observation (spec §1.4); an empty object before the first one."""

    strings: list[str] | None = Field(default=None, description="The observation's strings, sorted.")
    vectors: list[list[float]] | None = Field(default=None, description="The observation's vectors.")
    emotives: dict[str, float] | None = Field(default=None, description="Mean of each emotive so far.")
    path: list[Any] | None = Field(default=None, description="Always empty.")
    metadata: dict[str, Any] | None = Field(default=None, description="The observation's metadata.")


class PerceptDataResponse(BaseModel):
    percept_data: PerceptData
    session_id: str
    node_id: str


# ------------------------------------------------------------------------------------------- predictions
class Anomaly(BaseModel):
    observed: str = Field(description="State token.")
    expected: str = Field(description="The pattern token it fuzzily matched.")
    similarity: float = Field(description="Their fuzzy similarity.")


class Prediction(_Open):
    """One prediction (spec §2.5), including KATO's leaked helper fields."""

    type: Literal["prototypical"]
    name: str = Field(description="Bare 40-hex pattern hash (no PTRN| prefix).")
    frequency: int = Field(description="Times the pattern was learned.")
    sequence: Events = Field(description="The pattern's events.")
    matches: list[str] = Field(description="State symbols matched, in state order.")
    past: Events = Field(description="Pattern events before the present.")
    present: Events = Field(description="Pattern events from the first to the last match.")
    future: Events = Field(description="Pattern events after the present.")
    missing: Events = Field(description="Per present event, its symbols not matched.")
    extras: Events = Field(description="Per STM event, its symbols not in the present.")
    anomalies: list[Anomaly] = Field(description="Fuzzy matches that differ from the pattern token.")
    similarity: float
    evidence: float = Field(description="matches / pattern length.")
    confidence: float = Field(description="matches / present symbols.")
    fragmentation: float = Field(description="Matching blocks - 1 (-1.0 without blocks).")
    snr: float = Field(description="Signal-to-noise ratio, in [-1, 1].")
    emotives: dict[str, float] = Field(description="Mean of each stored emotive.")
    entropy: float
    normalized_entropy: float
    global_normalized_entropy: float
    confluence: float
    itfdf_similarity: float
    tfidf_score: float
    pattern_probability: float = Field(description="frequency / candidates' frequency (leaked by KATO).")
    weighted_strength: float = Field(description="similarity * pattern_probability (leaked by KATO).")
    predictive_information: float
    bayesian_prior: float
    bayesian_likelihood: float
    bayesian_posterior: float
    potential: float = Field(description="The default ranking metric.")
    weighted_similarity: float | None = Field(description="null unless affinity_emotive is set.")
    weighted_evidence: float | None = Field(description="null unless affinity_emotive is set.")
    weighted_confidence: float | None = Field(description="null unless affinity_emotive is set.")
    weighted_snr: float | None = Field(description="null unless affinity_emotive is set.")
    pre_potential: float | None = Field(default=None, alias="_pre_potential",
                                        description="Pruning key; present only when Top-K pruning ran.")


class FuturePotential(BaseModel):
    future: Events = Field(description="A future shared by candidates.")
    aggregate_potential: float = Field(description="Its share of the total weighted frequency.")
    supporting_patterns: int = Field(description="Candidates with this future.")
    total_weighted_frequency: float = Field(description="Sum of frequency * similarity of those candidates.")


class PredictionsResponse(BaseModel):
    """``GET /sessions/{id}/predictions``."""

    predictions: list[Prediction] = Field(description="Ranked predictions for the current STM.")
    future_potentials: list[FuturePotential] | None = Field(description="Futures of the candidates, by potential.")
    session_id: str
    processor_id: str | None = Field(description="Always null.")
    count: int = Field(description="Number of predictions.")
    time: int | None = Field(description="Always null.")
    unique_id: str | None = Field(description="Always null.")


class CognitionData(BaseModel):
    predictions: list[Prediction] = Field(description="Predictions computed by the last observe.")
    emotives: dict[str, float] = Field(description="The last observation's emotives.")
    symbols: list[str] = Field(description="The STM, flattened.")
    command: str
    metadata: dict[str, Any]
    path: list[Any]
    strings: list[str]
    vectors: list[list[float]]
    short_term_memory: Events


class SessionCognitionData(CognitionData):
    time: int = Field(description="The session's observation counter.")


class CognitionDataResponse(BaseModel):
    cognition_data: SessionCognitionData
    session_id: str
    node_id: str


# ------------------------------------------------------------------------------------------------ memory
class LearnResult(BaseModel):
    """``POST /sessions/{id}/learn`` (spec §1.5)."""

    status: Literal["learned"]
    pattern_name: str = Field(description="PTRN|<hash>, or '' when the STM had fewer than two symbols.")
    session_id: str
    processor_id: str | None = Field(description="Always null.")
    message: str


class FinalizeTrainingResult(BaseModel):
    """``POST /sessions/{id}/finalize-training`` (spec §3.7)."""

    status: Literal["completed"]
    patterns_processed: int
    time_ms: float
    session_id: str
    node_id: str
    message: str


class StmCleared(BaseModel):
    status: Literal["cleared"]
    session_id: str


class AllCleared(BaseModel):
    status: Literal["cleared"]
    session_id: str
    scope: Literal["all"]


# ------------------------------------------------------------------------------------------- node level
class StoredPattern(BaseModel):
    name: str = Field(description="PTRN|<hash>.")
    pattern_data: Events
    length: int = Field(description="Symbols in all events.")
    frequency: int
    emotives: list[dict[str, float]] = Field(description="Stored emotive dicts (raw list).")
    metadata: dict[str, Any] = Field(description="Key to the sorted list of its values.")


class PatternLookup(BaseModel):
    status: Literal["okay", "error"]
    pattern: StoredPattern | None = Field(default=None, description="Present when found.")
    message: str | None = Field(default=None, description="Present when not found.")


class PatternResponse(BaseModel):
    """``GET /pattern/{id}`` (not found is a 200 with status "error")."""

    pattern: PatternLookup
    node_id: str = Field(description="The kb_id.")


class AffinitiesResponse(BaseModel):
    affinities: dict[str, dict[str, float]] = Field(description="Symbol to emotive to summed affinity.")
    node_id: str = Field(description="The kb_id.")


class SymbolAffinityResponse(BaseModel):
    symbol: str
    affinity: dict[str, float] = Field(description="Emotive to summed affinity ({} when unknown).")
    node_id: str = Field(description="The kb_id.")


class SymbolStats(BaseModel):
    name: str
    frequency: int = Field(description="Occurrences in learned patterns.")
    pattern_member_frequency: int = Field(description="Distinct patterns holding the symbol.")


class SymbolStatsResponse(BaseModel):
    symbols: dict[str, SymbolStats]
    node_id: str = Field(description="The kb_id.")


class DeprecatedPerceptResponse(BaseModel):
    percept_data: dict[str, Any] = Field(description="Always empty.")
    node_id: str = Field(description="The kb_id.")
    warning: str


class DeprecatedCognitionResponse(BaseModel):
    cognition_data: CognitionData = Field(description="Always empty structures.")
    node_id: str = Field(description="The kb_id.")
    warning: str


# ------------------------------------------------------------------------------------------------- bulk
class BulkLearnResult(BaseModel):
    status: Literal["learned", "already_applied"]
    node_id: str = Field(description="The kb_id.")
    patterns_received: int
    learns_applied: int = Field(description="Learns applied, counting re-learns of the frequencies.")
    new_patterns: int = Field(description="Patterns the node did not hold before.")
    skipped: int = Field(description="Patterns under two symbols.")
    pattern_names: list[str] = Field(description="PTRN|<hash> per pattern, '' for a skipped one.")


class StreamedLoadResult(BaseModel):
    """``POST /bulk/learn`` with a streamed body (NDJSON or Arrow IPC)."""

    status: Literal["learned"]
    node_id: str = Field(description="The kb_id.")
    rows: int = Field(description="Rows of this body learned (rows committed before were skipped).")
    learns_applied: int = Field(description="Learns applied, counting re-learns of the frequencies.")
    new_patterns: int = Field(description="Patterns the node did not hold before.")
    skipped: int = Field(description="Patterns under two symbols.")
    resumed_from: int = Field(description="Rows of the load committed before this body.")
    load_id: str | None = Field(description="The load's id, when given.")
    batches: int = Field(description="Batches committed (each atomically, with the load's progress).")


class BulkLearnAnswer(RootModel[BulkLearnResult | StreamedLoadResult]):
    """``POST /bulk/learn``: a JSON batch answers ``BulkLearnResult``, a streamed body ``StreamedLoadResult``."""


class LoadProgress(BaseModel):
    """``GET /bulk/loads/{load_id}``."""

    load_id: str
    node_id: str = Field(description="The kb_id.")
    rows_done: int = Field(description="Rows of the load committed so far.")


class ExportedPattern(BaseModel):
    """One line of ``GET /bulk/export`` (what ``/bulk/learn`` takes back)."""

    name: str = Field(description="PTRN|<hash>.")
    events: Events
    emotives: list[dict[str, float]] = Field(description="Stored emotive dicts.")
    metadata: dict[str, Any]
    frequency: int


class KbImportResult(BaseModel):
    status: Literal["imported"]
    kb_id: str
    patterns_received: int
    patterns_stored: int
    keys_written: int


# ---------------------------------------------------------------------------------------------- admin
class ShardMapView(BaseModel):
    """The saved shard map: ``[shard_id, lo, hi]`` bucket ranges of this version, and while a reshard runs its
    target (the next version's ranges) and the bucket ranges moving."""

    version: int
    ranges: list[list[int]]
    target: list[list[int]] | None
    moving: list[list[int]]
    frozen_until_ms: int = Field(description="Until when (Redis time, ms) writes into moving buckets wait; 0: none.")


class ReshardStarted(BaseModel):
    status: Literal["started"]
    to_shards: int


class ReshardAborted(BaseModel):
    status: Literal["aborted"]
    map: ShardMapView


class ReshardStatus(BaseModel):
    """The map, and the last reshard's progress (``phase``: starting, copying, catching up, cut-over retried,
    switched, done or failed; with its figures: rows and bytes copied, catch-up lag, write pause)."""

    map: ShardMapView
    progress: dict[str, Any]


# ---------------------------------------------------------------------------------------------- service
class ServiceDescription(BaseModel):
    """``GET /``."""

    service: str
    version: str
    description: str
    docs: str
    health: str
    status: str
    uptime_seconds: float
    architecture: str
    session_support: bool


class HealthResponse(BaseModel):
    """``GET /health``."""

    status: Literal["healthy", "degraded", "unhealthy"]
    processor_status: Literal["healthy", "unhealthy", "unknown"]
    service_name: str
    uptime_seconds: float = Field(description="Seconds since this replica started.")
    issues: list[str]
    metrics_collected: int = Field(description="Time series recorded.")
    last_collection: float = Field(description="Epoch seconds of the last resource sample.")
    active_sessions: int
    timestamp: str = Field(description="ISO 8601 timestamp.")


class ShardLog(BaseModel):
    """A shard's write-ahead logs: what waits to be stored in ClickHouse."""

    rows: int = Field(description="Rows in the logs, not yet in the store.")
    entries: int
    flush_lag_seconds: float = Field(description="Age of the oldest of them.")
    last_flush_error: str | None = Field(description="Why the last flush failed, while it keeps failing.")
    rows_flushed: int = Field(description="Rows stored since the shard started.")
    store_inserts: int = Field(description="Inserts those took.")
    store_parts: int = Field(description="Active parts of the patterns table in the shard's store.")


class ProcessorInfo(_Open):
    """One shard, in KATO's processor shape, with the shard's own figures."""

    processor_id: str = Field(description="shard-<id>.")
    node_id: str = Field(description="The shard's bucket range.")
    created_at: str | None
    last_accessed: str | None
    access_count: int
    idle_seconds: float
    patterns_per_kb: dict[str, int] = Field(description="Patterns the shard holds per kb_id.")
    index_bytes: int = Field(description="Memory of the shard's index.")
    pid: int = Field(description="Process holding the shard.")
    ray_node: str = Field(description="Ray node id of that process ('' for a shard in the service's process).")
    rss_bytes: int = Field(description="Resident memory of that process (0 for a shard in the service's process).")
    log: ShardLog


class ProcessorManager(_Open):
    total_processors: int
    max_processors: int
    eviction_ttl_seconds: int
    processors: list[ProcessorInfo]


class EngineHealth(_Open):
    redis: bool = Field(description="Whether Redis answers.")
    shards: bool = Field(description="Whether every shard answers.")


class StatusSessions(_Open):
    active: int = Field(description="Live sessions.")


class RayNode(BaseModel):
    """A node of the Ray cluster."""

    node_id: str
    address: str = Field(description="The node's IP address.")
    alive: bool
    cpus: float = Field(description="CPUs Ray may schedule there.")
    memory_bytes: int = Field(description="Memory Ray may schedule there.")


class StatusResponse(_Open):
    """``GET /status``."""

    status: Literal["healthy"]
    base_processor_id: str = Field(description="The service name.")
    uptime_seconds: float
    sessions: StatusSessions
    processors: ProcessorManager
    version: str
    engines: EngineHealth
    shard_map: ReshardStatus = Field(description="The saved shard map and the last reshard's progress.")
    nodes: list[RayNode] = Field(description="The Ray cluster's nodes, live first (none for in-process shards); "
                                             "which shards each holds is the processors' ray_node.")
    redis_layout: Literal["kato", "compact", "compact:65536", "compact:1048576"] = Field(
        description="Where Redis keeps per-pattern values: KATO's keys, or the compact layout's bucket hashes.")


class SessionMetrics(BaseModel):
    total_created: int
    total_deleted: int
    active: int
    operations_total: int = Field(description="Requests on /sessions paths.")


class PerformanceMetrics(BaseModel):
    total_requests: int
    total_errors: int = Field(description="Requests answered 5xx.")
    error_rate: float = Field(description="errors / requests.")
    average_response_time: float = Field(description="Seconds.")


class ResourceMetrics(BaseModel):
    cpu_percent: float = Field(description="0-100.")
    memory_percent: float = Field(description="0-100.")
    disk_percent: float = Field(description="0-100.")


class DatabaseMetrics(BaseModel):
    operations: int
    errors: int
    avg_response_time: float = Field(description="Seconds.")


class DatabasesMetrics(_Open):
    clickhouse: DatabaseMetrics
    qdrant: DatabaseMetrics
    redis: DatabaseMetrics


class RateMetrics(_Open):
    requests_per_second: float
    requests_per_minute: float
    errors_per_minute: float
    sessions_per_minute: float
    clickhouse_ops_per_second: float
    qdrant_ops_per_second: float
    redis_ops_per_second: float


class MetricsSummary(_Open):
    sessions: SessionMetrics
    performance: PerformanceMetrics
    resources: ResourceMetrics
    databases: DatabasesMetrics


class MetricsResponse(_Open):
    """``GET /metrics``: cluster-wide totals, this host's resources."""

    timestamp: float = Field(description="Epoch seconds.")
    sessions: SessionMetrics
    performance: PerformanceMetrics
    resources: ResourceMetrics
    databases: DatabasesMetrics
    rates: RateMetrics = Field(description="Sliding 60 s estimates.")
    processor_manager: ProcessorManager


class HealthMetrics(BaseModel):
    cpu_percent: float
    memory_percent: float
    error_rate_per_min: float


class CurrentStatus(BaseModel):
    status: Literal["healthy", "degraded", "unhealthy"]
    issues: list[str]
    metrics: HealthMetrics
    timestamp: str = Field(description="ISO 8601 timestamp.")


class DataPoint(BaseModel):
    timestamp: float = Field(description="Start of the minute (epoch seconds).")
    value: float = Field(description="The minute's count (counter series) or mean.")


class StatsResponse(_Open):
    """``GET /stats``."""

    time_range_minutes: int
    timestamp: float = Field(description="Epoch seconds.")
    processor_manager: ProcessorManager
    current_status: CurrentStatus
    time_series: dict[str, list[DataPoint]] = Field(description="Series name to its one-minute points.")
    summary: MetricsSummary


class MetricStatistics(BaseModel):
    count: int
    min: float
    max: float
    avg: float


class MetricResponse(BaseModel):
    """``GET /metrics/{name}``."""

    metric_name: str
    time_range_minutes: int
    timestamp: float = Field(description="Epoch seconds.")
    statistics: MetricStatistics
    data_points: list[DataPoint]


class ConcurrencyInfo(BaseModel):
    status: Literal["ok"]
    session_serialisation: str
    cluster_wide: bool


class CacheStats(BaseModel):
    status: Literal["ok"]
    caches: dict[str, Any] = Field(description="None are kept.")


class CacheInvalidated(BaseModel):
    status: Literal["ok"]
    invalidated: int


class DistributedStmStats(BaseModel):
    status: Literal["ok"]
    backend: str
    active_sessions: int


class ConnectionPools(BaseModel):
    status: Literal["ok"]
    redis: str
    clickhouse: str


# ----------------------------------------------------------------------------------------------- errors
class ErrorResponse(BaseModel):
    """An error: FastAPI's ``{"detail": ...}``."""

    detail: Any = Field(description="A message, or an object saying more.")


class SessionErrorInfo(BaseModel):
    code: Literal["SESSION_NOT_FOUND"]
    message: str
    session_id: str


class SessionNotFoundResponse(BaseModel):
    """404 on an unknown or expired session (``error`` is absent on ``GET /sessions/{id}``)."""

    detail: str = Field(description="Session <id> not found or expired.")
    error: SessionErrorInfo | None = Field(default=None, description="KATO's middleware body.")


class ConfigValidationDetail(BaseModel):
    error: Literal["Configuration validation failed"]
    validation_errors: dict[str, str] = Field(description="Key to what is wrong with its value.")


class ConfigValidationErrorResponse(BaseModel):
    """400 on a configuration update with invalid values (or a body that is not JSON)."""

    detail: ConfigValidationDetail | str = Field(description="The invalid values, or why the body was not read.")


class ValidationIssue(_Open):
    """One problem of a request that failed validation (FastAPI's shape)."""

    loc: list[str | int] = Field(description="Where the problem is (body, query, path, then keys).")
    msg: str
    type: str
    input: Any = Field(default=None, description="The value refused (non-finite numbers as strings).")
    ctx: dict[str, Any] | None = Field(default=None, description="What the check expected.")


class UnprocessableResponse(BaseModel):
    """422: a request that failed validation (a list of issues), or a value beyond the service's limits."""

    detail: list[ValidationIssue] | str
