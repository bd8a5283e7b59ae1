"""Serializers that let schemathesis send the streamed bodies ``POST /bulk/learn`` takes (NDJSON, Arrow IPC)."""

from __future__ import annotations

import json
from typing import Any

import schemathesis


@schemathesis.serializer("application/x-ndjson")
def ndjson(_ctx: Any, value: Any) -> bytes:
    """A generated list of patterns as one JSON value per line (anything else as one line)."""
    items = value if isinstance(value, list) else [value]
    return b"".join(json.dumps(item).encode() + b"\n" for item in items)


@schemathesis.serializer("application/vnd.apache.arrow.stream")
def arrow(_ctx: Any, value: Any) -> bytes:
    """Generated binary data as it is (the service must refuse what is not an Arrow stream with a 4xx)."""
    return value if isinstance(value, bytes) else str(value).encode()
