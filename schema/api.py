"""Request payloads of the KATO HTTP API (spec §1.1, §1.10, §4.2).

Unknown keys are ignored, as KATO's models do. Types are pydantic's lax mode, which is what KATO's FastAPI
models use, so the same bodies are accepted and refused.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class ObservationData(BaseModel):
    model_config = ConfigDict(extra="ignore")

    strings: list[str] = Field(default_factory=list, description="Symbols observed together (one event).")
    vectors: list[list[float]] = Field(default_factory=list, description="Vectors, summed into one VCTR| symbol.")
    emotives: dict[str, float] = Field(default_factory=dict, description="Emotive name to value.")
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
