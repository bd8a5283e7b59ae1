"""Every HTTP route documents its answer with a response model (``schema.responses``), the models fit the real
answers (here: the in-process reference KATO; over the real engines: ``tests/integration``), and declaring them
changes no byte of any answer."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
from fastapi.routing import APIRoute, iter_route_contexts
from pydantic import BaseModel

from schema import responses as r
from schema.config import ServerDefaults, effective_config
from schema.rules.reference_kato import ReferenceKato, ReferenceSession
from serve_app.api.app import build_app
from serve_app.api.holder import ServiceHolder
from serve_app.api.rendering import PlainJSONResponse
from tests.unit.kato_helpers import learn_events, new_session, observe_events

UNDOCUMENTED = {("GET", "/bulk/export")}  # NDJSON: documented per line (``itemSchema``), not as one model


# ------------------------------------------------------------------------------------------------ helpers
def as_sent(value: Any) -> Any:
    """``value`` as a client reads it: rendered as the routes render the service's answers."""
    return json.loads(PlainJSONResponse(value).body)


def undeclared(value: Any, where: str = "body") -> list[str]:
    """Keys of ``value`` (a validated model, at any depth) that its model does not declare."""
    if isinstance(value, BaseModel):
        found = [f"{where}.{key}" for key in value.model_extra or {}]
        for name in type(value).model_fields:
            found += undeclared(getattr(value, name), f"{where}.{name}")
        return found
    if isinstance(value, list):
        return [k for i, item in enumerate(value) for k in undeclared(item, f"{where}[{i}]")]
    if isinstance(value, dict):
        return [k for key, item in value.items() for k in undeclared(item, f"{where}.{key}")]
    return []


def validated(model: type[BaseModel], body: Any) -> BaseModel:
    """``body`` checked against ``model`` strictly: no coercion, nothing left out, nothing the model omits."""
    parsed = model.model_validate(body, strict=True)
    assert parsed.model_dump(by_alias=True, exclude_unset=True) == body, f"{model.__name__} drops or adds keys"
    assert not undeclared(parsed), f"{model.__name__} does not declare {undeclared(parsed)}"
    return parsed


class AppClient:
    """Requests to the app in this process, through its middleware (``httpx`` over ASGI)."""

    def __init__(self, app) -> None:
        self.app = app

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        async def send() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://kato") as client:
                return await client.request(method, path, **kwargs)
        return asyncio.run(send())

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", path, **kwargs)


def http_routes(app) -> list[tuple[str, Any]]:
    """(method, route) of every HTTP route, as the app serves it (prefixes of included routers applied)."""
    return [(method, route) for route in iter_route_contexts(app.routes) if isinstance(route.original_route, APIRoute)
            for method in route.methods]


# --------------------------------------------------------------------------------------------- the schema
@pytest.fixture(scope="module")
def app():
    return build_app()


@pytest.fixture(scope="module")
def openapi(app) -> dict[str, Any]:
    return app.openapi()


def test_every_http_route_has_a_response_model_in_the_schema(app, openapi):
    routes = http_routes(app)
    assert len(routes) >= 38
    components = openapi["components"]["schemas"]
    for method, route in routes:
        if (method, route.path) in UNDOCUMENTED:
            continue
        assert route.response_model is not None, f"{method} {route.path} declares no response model"
        operation = openapi["paths"][route.path][method.lower()]
        status = str(route.status_code or 200)
        schema = operation["responses"][status]["content"]["application/json"]["schema"]
        assert set(schema) == {"$ref"}, f"{method} {route.path}: {schema}"
        name = schema["$ref"].removeprefix("#/components/schemas/")
        assert name == route.response_model.__name__ and name in components
        assert getattr(r, name) is route.response_model, f"{name} is not a model of schema.responses"


def test_the_schema_lists_every_http_route_and_no_websocket(app, openapi):
    documented = {(m.upper(), path) for path, ops in openapi["paths"].items() for m in ops}
    assert documented == {(method, route.path) for method, route in http_routes(app)}
    assert "/ws/events" not in openapi["paths"]


def test_the_export_documents_its_lines(openapi):
    ok = openapi["paths"]["/bulk/export"]["get"]["responses"]["200"]
    assert set(ok["content"]) == {"application/x-ndjson"}
    assert ok["content"]["application/x-ndjson"]["itemSchema"]["title"] == "ExportedPattern"


def test_well_known_errors_are_documented(openapi):
    paths = openapi["paths"]
    ref = "#/components/schemas/"
    assert paths["/sessions/{session_id}/observe"]["post"]["responses"]["404"]["content"]["application/json"][
        "schema"] == {"$ref": ref + "SessionNotFoundResponse"}
    assert paths["/sessions/{session_id}/config"]["post"]["responses"]["400"]["content"]["application/json"][
        "schema"] == {"$ref": ref + "ConfigValidationErrorResponse"}
    assert paths["/sessions"]["post"]["responses"]["422"]["content"]["application/json"]["schema"] == {
        "$ref": ref + "UnprocessableResponse"}
    assert "404" in paths["/metrics/{name}"]["get"]["responses"]
    assert all("503" in op["responses"] for ops in paths.values() for op in ops.values())


def test_prediction_documents_the_leaked_fields(openapi):
    prediction = openapi["components"]["schemas"]["Prediction"]
    assert {"_pre_potential", "pattern_probability", "weighted_strength"} <= set(prediction["properties"])
    assert "_pre_potential" not in prediction["required"]
    assert prediction["properties"]["frequency"]["type"] == "integer"
    assert prediction["properties"]["potential"]["type"] == "number"
    assert prediction["properties"]["weighted_snr"]["anyOf"] == [{"type": "number"}, {"type": "null"}]


# ---------------------------------------------------------------------------- the models change nothing
class FakeService:
    """Answers that fit no model: what the routes send must still be exactly the service's answer."""

    answer = {"predictions": [{"potential": 1, "similarity": 1.0, "surprise": "ü"}], "count": 1.0,
              "tiny": 1e-06, "big": 10 ** 20}

    def predictions(self, _session_id):
        return self.answer

    def symbol_stats(self, _node_id):
        return self.answer


class FakeMonitor:
    answer = {"status": "odd", "uptime_seconds": 5, "tiny": 1e-06, "name": "ü", "nested": {"n": 1.0}}

    def record_request_soon(self, *_args):
        pass

    def root(self):
        return self.answer

    def health(self, _active):
        return self.answer

    def metric(self, _name, _minutes):
        return self.answer


class FakeSessions:
    def count(self):
        return 0


def test_declared_models_are_never_applied_to_the_answers():
    service = FakeService()
    service.sessions = FakeSessions()
    client = AppClient(build_app(ServiceHolder(service=service, monitor=FakeMonitor())))
    for path in ("/sessions/s1/predictions", "/symbols/stats"):
        got = client.get(path)
        assert (got.status_code, got.content) == (200, PlainJSONResponse(FakeService.answer).body)
    plain = json.dumps(FakeMonitor.answer, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()
    for path in ("/", "/health", "/metrics/kato_requests_total"):  # FastAPI's encoding of a returned dict
        got = client.get(path)
        assert (got.status_code, got.headers["content-type"], got.content) == (200, "application/json", plain)


# -------------------------------------------------------------------------- real answers of the reference
def predictions_of(session: ReferenceSession) -> list[dict[str, Any]]:
    predictions, futures = session.predictions()
    body = as_sent({"predictions": predictions, "future_potentials": futures, "session_id": "s",
                    "processor_id": None, "count": len(predictions), "time": None, "unique_id": None})
    validated(r.PredictionsResponse, body)
    return body["predictions"]


def test_observe_and_observe_sequence_answers_fit():
    s = new_session(max_pattern_length=2)
    validated(r.ObservationResult, as_sent(s.observe(["a", "b"])))
    auto = as_sent(s.observe(["c"]))
    assert validated(r.ObservationResult, auto).auto_learned_pattern.startswith("PTRN|")
    validated(r.ObservationResult, as_sent(s.observe([], emotives={"joy": 1}, metadata={"k": [1, None]})))
    validated(r.ObservationResult, as_sent(s.observe(vectors=[[1, 2.5]])))
    for flags in ({}, {"learn_after_each": True}, {"learn_at_end": True, "clear_stm_between": True}):
        items = [{"strings": ["x", "y"], "unique_id": "mine"}, {"strings": ["z"]}, {}]
        validated(r.ObservationSequenceResult, as_sent(s.observe_sequence(observations=items, **flags)))
    empty = validated(r.ObservationSequenceResult, as_sent(s.observe_sequence(observations=[])))
    assert empty.final_learned_pattern is None


def test_prediction_answers_fit_on_every_path():
    s = new_session(recall_threshold=0.0)
    for events in ([["a"], ["b"], ["c"]], [["a", "x"], ["b"]], [["b"], ["c"], ["d"]], [["q"], ["r"]]):
        learn_events(s, events, emotives={"joy": 0.5})
    observe_events(s, [["a"], ["b"]])
    general = predictions_of(s)
    assert len(general) == 4 and all(isinstance(p["frequency"], int) for p in general)
    assert any(p["similarity"] == 0.0 and p["fragmentation"] == -1.0 for p in general)
    s.clear_stm()
    s.observe(["a"])
    assert predictions_of(s)  # the single-symbol path
    s.update_config({"max_predictions": 1})
    observe_events(s, [["b"]])
    pruned = predictions_of(s)
    assert len(pruned) == 1 and "_pre_potential" in pruned[0]
    s.update_config({"max_predictions": 10, "affinity_emotive": "joy", "use_token_matching": False})
    weighted = predictions_of(s)
    assert all(isinstance(p["weighted_snr"], float) for p in weighted)
    s.kato.backend.kb(s.kb_id).finalize_training()
    assert predictions_of(s)


def test_fuzzy_anomalies_fit():
    s = new_session(fuzzy_token_threshold=0.6)
    learn_events(s, [["hello"], ["world"]])
    observe_events(s, [["helo"], ["world"]])
    anomalies = [a for p in predictions_of(s) for a in p["anomalies"]]
    assert anomalies and anomalies[0]["expected"] == "hello"


def test_cognition_predictions_fit():
    kato = ReferenceKato()
    s = new_session(kato)
    learn_events(s, [["a"], ["b"], ["c"]])
    s.observe(["a"], emotives={"joy": 1.0})
    s.observe(["b"])
    state = s.state
    body = as_sent({"cognition_data": {
        "predictions": state.predictions, "emotives": state.emotives_accumulator[-1],
        "symbols": [x for event in state.stm for x in event], "command": "", "metadata": {}, "path": [],
        "strings": [], "vectors": [], "short_term_memory": state.stm, "time": state.time,
    }, "session_id": "s", "node_id": "n"})
    assert validated(r.CognitionDataResponse, body).cognition_data.predictions


@pytest.mark.parametrize("session_values", [{}, {"affinity_emotive": "joy", "fuzzy_token_threshold": 0.5,
                                                 "recall_threshold": 0, "filter_pipeline": ["jaccard"]}])
def test_the_effective_config_fits(session_values):
    config = as_sent(effective_config(session_values, ServerDefaults()))
    validated(r.ConfigResponse, {"session_id": "s", "config": config})
    assert isinstance(config["recall_threshold"], type(session_values.get("recall_threshold", 0.1)))


def test_the_strict_check_refuses_retyped_and_unknown_fields():
    good = {"status": "extended", "session_id": "s", "ttl_seconds": 60}
    validated(r.SessionExtended, good)
    with pytest.raises(ValueError):
        validated(r.SessionExtended, {**good, "ttl_seconds": 60.0})
    with pytest.raises(AssertionError):
        validated(r.SessionExtended, {**good, "surprise": 1})
