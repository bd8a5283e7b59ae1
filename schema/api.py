"""Request payloads of the KATO HTTP API (spec §1.1, §1.10, §4.2).

Unknown keys are ignored, as KATO's models do. Types are pydantic's lax mode, which is what KATO's FastAPI
models use, so the same bodies are accepted and refused.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

NDJSON = "application/x-ndjson"  # a streamed bulk load: one BulkPattern per line
ARROW_STREAM = "application/vnd.apache.arrow.stream"  # a streamed bulk load as an Arrow IPC stream

Event = Annotated[list[str], Field(min_length=1)]
Events = Annotated[list[Event], Field(min_length=1)]
# Emotives are summed and averaged (per session, per pattern, and in the running affinity sums of every learn):
# values this far below float64's maximum (1.8e308) can never add up to infinity, which JSON cannot carry and
# Redis refuses (HINCRBYFLOAT). Larger ones are refused with 422, like NaN and Infinity.
EMOTIVE_LIMIT = 1e100
MAX_FREQUENCY = 1_000_000  # a bulk pattern's learns


def _bounded_emotive(value: float) -> float:
    if abs(value) > EMOTIVE_LIMIT:
        raise ValueError(f"emotive values must be at most 1e100 in magnitude (got {value!r}): larger ones could "
                         "add up to infinity")
    return value


EmotiveValue = Annotated[float, AfterValidator(_bounded_emotive)]


class ObservationData(BaseModel):
    # NaN/Infinity are not JSON and would poison every metric computed from them: refused with 422.
    model_config = ConfigDict(extra="ignore", allow_inf_nan=False)

    strings: list[str] = Field(default_factory=list, description="Symbols observed together (one event).")
    vectors: list[list[float]] = Field(default_factory=list, description="Vectors, summed into one VCTR| symbol.")
    emotives: dict[str, EmotiveValue] = Field(default_factory=dict,
                                              description="Emotive name to value (magnitude at most 1e100).")
    metadata: dict[str, Any] = Field(default_factory=dict, description="Any JSON values; stringified at learn.")


class ObservationSequenceItem(ObservationData):
    unique_id: str | None = Field(default=None, description="Caller's id for this item.")


class ObservationSequenceRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    observations: list[ObservationSequenceItem]
    learn_after_each: bool = False
    learn_at_end: bool = False
    clear_stm_between: bool = False


class CreateSessionRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    node_id: str
    config: dict[str, Any] | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    ttl_seconds: int | None = None


class BulkPattern(BaseModel):
    """One pattern to learn: its events as stored (no re-sorting), with what a learn would carry."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    events: Events = Field(description="The pattern's events, in order (each event non-empty).")
    emotives: list[dict[str, EmotiveValue]] = Field(default_factory=list,
                                                    description="Per-observation emotive dicts (values at most "
                                                                "1e100 in magnitude).")
    metadata: dict[str, Any] = Field(default_factory=dict,
                                     description="Key to a value or a list of values (as exported); each value "
                                                 "is stringified and kept once, like learned metadata.")
    frequency: int = Field(default=1, ge=1, le=MAX_FREQUENCY,
                           description="Times the pattern was learned: one learn carrying the emotives and "
                                       "metadata, then frequency-1 plain re-learns.")


class BulkLearnRequest(BaseModel):
    """Learn many patterns of one node at once (same end state as learning them one by one, in order)."""

    model_config = ConfigDict(extra="forbid")

    node_id: str
    patterns: list[BulkPattern]
    persistence: int = Field(default=5, ge=1, le=100, description="Emotive entries kept per pattern.")
    batch_id: str | None = Field(default=None, max_length=200,
                                 description="Idempotency key: a batch already applied to this node is skipped "
                                             "(lets an interrupted load resume without learning twice).")


class RedisValue(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: str = Field(pattern="^(string|hash|set|list)$")
    value: Any


class ImportRow(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=40, max_length=40, pattern="^[0-9a-f]{40}$")
    events: Events


class KbImportRequest(BaseModel):
    """Raw KATO data of one knowledge base: pattern rows and ``{kb_id}:*`` Redis keys, stored verbatim."""

    model_config = ConfigDict(extra="forbid")

    kb_id: str = Field(min_length=1, max_length=200)
    patterns: list[ImportRow] = Field(default_factory=list)
    keys: dict[str, RedisValue] = Field(default_factory=dict)


class ReshardRequest(BaseModel):
    """``POST /admin/reshard``: the shard count to move to (split or merge bucket ranges while serving)."""

    model_config = ConfigDict(extra="forbid")

    shards: int = Field(ge=1, le=256, description="The number of shards to have once the move is done.")
