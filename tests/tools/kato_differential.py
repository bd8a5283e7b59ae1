"""Differential replay: the same seeded random scenarios against kato-cluster and a real KATO 3.10.1.

Run, with both services already up (this tool neither builds nor starts either; it only speaks HTTP)::

    python -m tests.tools.kato_differential --ours http://127.0.0.1:28400 --kato http://127.0.0.1:28401 \\
        [--scenarios 40] [--steps 25] [--seed 1] [--focus mixed|observe-sequence|vectors|char-zero] \\
        [--budget 30] [--stance-budget 6] [--no-minimise] [--strict] [--json FILE]
    python -m tests.tools.kato_differential --ours URL --kato URL --replay DUMP.json#N  # kind N of a --json dump

A scenario has one or two nodes (fresh random node ids on each service, so every knowledge base starts
empty), one to three sessions and a random walk of ``--steps`` steps, followed by a closing ``GET stm`` and
``GET predictions`` per session. Steps: observe (strings from a small vocabulary, sometimes several per event,
emotives, metadata, vectors of length 4 with small integer or 0.1-step values, vector-only or empty
observations), observe-sequence (random learn_after_each / learn_at_end / clear_stm_between, items with and
without vectors or their own unique_id), learn, clear-stm, clear-all, config updates (recall_threshold,
use_token_matching, max_pattern_length, stm_mode, max_predictions), GET stm, GET predictions,
GET cognition-data and GET /pattern/{name}. ``--focus`` shifts the weights (more sequences, more vectors, or
character mode at recall_threshold 0.0). The walk is a function of ``--seed``, ``--focus`` and the scenario
number only, so a run can be repeated.

Every response is compared, status code and JSON body, after these normalisations of what cannot match:
- session ids, node ids and kb ids (which embed the node id) become ``<sessionN>`` / ``<nodeN>`` by position;
- ``unique_id`` values the server generated (``obs-<hex>``, ``seq-obs-<hex>``) become ``obs-<uuid>``;
- timestamps (``created_at``, ``expires_at``, ``updated_at``, ``last_accessed``, ``timestamp``, ``time_ms``)
  become ``<ts>``;
- numbers compare with a relative tolerance of 1e-9 (absolute 1e-12 near zero); the summary counts exact and
  tolerance-only agreements separately; an int on one side and a float on the other is its own difference;
- predictions are paired by name and compared as lists sorted by (potential desc, similarity desc, name);
  KATO's order among equal potentials is not deterministic (spec §2.7, Q16), so the raw order is reported only
  where it differs beyond ties; future_potentials are sorted by (aggregate_potential desc, future).

Known stances (spec §8): differences that the project's documented stances explain are not dropped but
labelled with the stance (see ``STANCES``) and listed apart, in the "excluded" part of the summary, so a reader
sees exactly what was set aside; ``--strict`` turns the labelling off. Each difference kind (endpoint + JSON
path, list indices and prediction names folded to ``[]``) gets one reproduction: the shortest failing prefix,
shrunk by re-running subsets of its steps, then simpler step bodies, on fresh nodes (``--budget`` replays per
kind, ``--stance-budget`` for the excluded kinds). Exit status: 0 without unexplained differences, 1 with some,
2 if a service does not answer ``/health`` (``healthy`` or ``degraded``: a busy machine reports high CPU).
"""

from __future__ import annotations

import argparse
import json
import math
import random
import re
import sys
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import requests

JSON = Any
Raw = tuple[str, str]  # (concrete JSON path, detail)

VOCAB = ("a", "b", "c", "d", "e", "ab", "bc", "cat", "cart", "dog")
EMOTIVE_KEYS = ("joy", "fear")
EMOTIVE_VALUES = (-1.0, -0.5, 0.0, 0.3, 0.5, 1, 2.0)
METADATA_VALUES = ("x", "y", 1, 2.5, True)
FOCUSES = ("mixed", "observe-sequence", "vectors", "char-zero")
DEFAULT_CONFIG: dict[str, JSON] = {"recall_threshold": 0.1, "max_predictions": 100, "use_token_matching": True,
                                   "max_pattern_length": 0, "stm_mode": "CLEAR"}
CONFIG_CHOICES: dict[str, tuple[JSON, ...]] = {
    "recall_threshold": (0.0, 0.1, 0.3, 0.5), "use_token_matching": (True, False),
    "max_pattern_length": (0, 2, 3), "stm_mode": ("CLEAR", "ROLLING"), "max_predictions": (1, 2, 3, 5, 100)}
OPS = ("observe", "observe-sequence", "learn", "clear-stm", "clear-all", "config", "stm", "predictions",
       "cognition-data", "pattern")
OP_WEIGHTS: dict[str, tuple[int, ...]] = {  # in the order of OPS
    "mixed": (30, 8, 10, 3, 2, 8, 5, 12, 6, 5),
    "observe-sequence": (12, 30, 8, 3, 2, 8, 6, 10, 4, 4),
    "vectors": (30, 12, 14, 3, 2, 6, 5, 12, 5, 4),
    "char-zero": (28, 6, 10, 3, 1, 14, 4, 20, 6, 3),
}
VECTOR_PROBABILITY = {"vectors": 0.7}
SESSION_POSTS = ("observe", "observe-sequence", "learn", "clear-stm", "clear-all", "config")
SESSION_GETS = ("stm", "predictions", "cognition-data")
REL_TOL, ABS_TOL = 1e-9, 1e-12
TIMESTAMP_KEYS = frozenset({"created_at", "expires_at", "updated_at", "last_accessed", "timestamp", "time_ms",
                            "destroyed_at"})
GENERATED_UID = re.compile(r"^(obs|seq-obs)-[0-9a-f]{32}$")
HASH_IN_PATH = re.compile(r"predictions\[([0-9a-f]{40})\]\.emotives(\.|$)")
UNKNOWN_PATTERN = "0" * 40

PROBE_CAP = 10_000  # max_predictions of a probe: every candidate, no pruning

STANCES: dict[str, str] = {
    "Q4": "cognition-data predictions: KATO computes them at observe time with the server defaults "
          "(recall_threshold 0.1, max_predictions 100, token matching), ours with the session config; labelled "
          "when the session's config at its last observe differed from those defaults",
    "Q5": "KATO does not reset the emotives/metadata accumulators at learn, ours does: the emotives/metadata of "
          "patterns learned while KATO still held entries from before an earlier learn, and cognition-data "
          "emotives after such a learn",
    "Q6": "auto-learned patterns: KATO stores emotives [] and metadata {}, ours the session's accumulators "
          "(labelled when the session had any)",
    "Q7": "single-symbol path (the STM flattens to one symbol): KATO answers flat past/present/future/missing/"
          "extras, its own snr/potential and a stale future_potentials; only the set of prediction names is "
          "compared unlabelled (below the max_predictions cut)",
    "Q15": "clear-all: KATO keeps the node's stored vectors (later vector observations still find them), ours "
           "deletes them; every difference on a node that observes vectors after a clear-all that followed "
           "vector observations",
    "Q16": "ties: which members of a group of equal potentials survive the max_predictions cut (the raw order "
           "among ties is never reported); and vector neighbours (spec §5.2): every difference on a node after "
           "an observation whose 3rd and 4th nearest stored vectors are at exactly the same distance (KATO's "
           "index breaks that tie by numpy's unstable argsort, ours by first insertion); and every predictions "
           "difference of a step whose candidates tie on pre-potential across the 3·max_predictions pruning cut "
           "(KATO keeps them in its set order, hash-randomised per process; spec §2.7)",
    "EMPTY": "predictions of an empty STM (spec silent): KATO answers its worker process's last future_potentials "
             "(left over from the node's last prediction, any session), ours [] (README, How it maps to KATO)",
    "Q18": "character mode (use_token_matching false) at recall_threshold 0.0: KATO answers no predictions (a "
           "swallowed RapidFuzz error), ours every candidate; GET predictions in that configuration",
}


# ------------------------------------------------------------------------------------------------ scenarios

@dataclass
class Scenario:
    index: int
    nodes: int
    sessions: list[int]  # node index of each session
    steps: list[dict[str, JSON]]


def generate(seed: int, focus: str, index: int, n_steps: int) -> Scenario:
    """The scenario `index` of a run: a pure function of (seed, focus, index, n_steps)."""
    rng = random.Random(f"{seed}:{focus}:{index}")
    n_sessions = rng.randint(1, 3)
    nodes = min(rng.choice((1, 2)), n_sessions)
    sessions = list(range(nodes)) + [rng.randrange(nodes) for _ in range(n_sessions - nodes)]
    steps = [gen_step(rng, focus, n_sessions) for _ in range(n_steps)]
    for s in range(n_sessions):
        steps += [{"op": "stm", "s": s}, {"op": "predictions", "s": s}]
    return Scenario(index, nodes, sessions, steps)


def gen_step(rng: random.Random, focus: str, n_sessions: int) -> dict[str, JSON]:
    op = rng.choices(OPS, weights=OP_WEIGHTS[focus])[0]
    step: dict[str, JSON] = {"op": op, "s": rng.randrange(n_sessions)}
    if op == "observe":
        step["body"] = gen_observation(rng, focus)
    elif op == "observe-sequence":
        step["body"] = gen_sequence(rng, focus)
    elif op == "config":
        step["body"] = {"config": gen_config(rng, focus)}
    elif op == "pattern":
        step["pick"] = rng.randrange(1000)
        step["prefix"] = rng.random() < 0.5
    return step


def gen_observation(rng: random.Random, focus: str) -> dict[str, JSON]:
    body: dict[str, JSON] = {}
    if rng.random() < 0.04:
        return body  # empty observation: time +1, nothing in STM
    vector_p = VECTOR_PROBABILITY.get(focus, 0.15)
    vector_only = rng.random() < vector_p * 0.3
    if not vector_only:
        body["strings"] = [rng.choice(VOCAB) for _ in range(rng.choices((1, 2, 3), (6, 3, 1))[0])]
    if vector_only or rng.random() < vector_p:
        body["vectors"] = [gen_vector(rng) for _ in range(rng.choice((1, 1, 2)))]
    if rng.random() < 0.2:
        keys = rng.sample(EMOTIVE_KEYS, rng.randint(1, 2))
        body["emotives"] = {key: rng.choice(EMOTIVE_VALUES) for key in keys}
    if rng.random() < 0.15:
        body["metadata"] = {"src": rng.choice(METADATA_VALUES)}
    return body


def gen_vector(rng: random.Random) -> list[float]:
    if rng.random() < 0.5:
        return [rng.randint(-1, 2) for _ in range(4)]
    return [round(rng.randint(-6, 6) * 0.1, 1) for _ in range(4)]


def gen_sequence(rng: random.Random, focus: str) -> dict[str, JSON]:
    longest = 6 if focus == "observe-sequence" else 4
    items = []
    for n in range(rng.randint(1, longest)):
        item = gen_observation(rng, focus)
        if rng.random() < 0.15:
            item["unique_id"] = f"item-{n}"
        items.append(item)
    body: dict[str, JSON] = {"observations": items}
    for flag in ("learn_after_each", "learn_at_end", "clear_stm_between"):
        roll = rng.random()
        if roll < 0.4:
            body[flag] = True
        elif roll < 0.5:
            body[flag] = False
    return body


def gen_config(rng: random.Random, focus: str) -> dict[str, JSON]:
    keys = rng.sample(list(CONFIG_CHOICES), rng.randint(1, 2))
    config = {key: rng.choice(CONFIG_CHOICES[key]) for key in keys}
    if focus == "char-zero" and rng.random() < 0.7:
        config["use_token_matching"] = rng.random() < 0.25
        config["recall_threshold"] = 0.0 if rng.random() < 0.6 else rng.choice((0.1, 0.3))
    return config


# ------------------------------------------------------------------------------------------------ services

class Service:
    """One side of the comparison: its base URL, its node ids and session ids (by position)."""

    def __init__(self, name: str, base: str) -> None:
        self.name = name
        self.base = base.rstrip("/")
        self.http = requests.Session()
        self.nodes: list[str] = []
        self.sessions: list[str] = []

    def call(self, method: str, path: str, body: JSON = None, params: dict[str, str] | None = None) -> tuple[int, JSON]:
        resp = self.http.request(method, self.base + path, json=body, params=params, timeout=120)
        try:
            return resp.status_code, resp.json()
        except ValueError:
            return resp.status_code, resp.text

    def ids(self) -> dict[str, str]:
        mapping = {sid: f"<session{i}>" for i, sid in enumerate(self.sessions)}
        mapping.update({nid: f"<node{i}>" for i, nid in enumerate(self.nodes)})
        return mapping

    def healthy(self) -> bool:
        try:
            status, body = self.call("GET", "/health")
        except requests.RequestException:
            return False
        return status == 200 and isinstance(body, dict) and body.get("status") in ("healthy", "degraded")


def normalise(value: JSON, ids: dict[str, str]) -> JSON:
    """Replace what cannot match between the services (ids, generated unique_ids, timestamps)."""
    if isinstance(value, dict):
        return {key: "<ts>" if key in TIMESTAMP_KEYS and item is not None else normalise(item, ids)
                for key, item in value.items()}
    if isinstance(value, list):
        return [normalise(item, ids) for item in value]
    if isinstance(value, str):
        match = GENERATED_UID.match(value)
        if match:
            return f"{match.group(1)}-<uuid>"
        for real, placeholder in ids.items():
            value = value.replace(real, placeholder)
    return value


# ------------------------------------------------------------------------------------------------ stance state

@dataclass
class SessionTrack:
    node: int
    config: dict[str, JSON] = field(default_factory=lambda: dict(DEFAULT_CONFIG))
    config_at_observe: dict[str, JSON] = field(default_factory=lambda: dict(DEFAULT_CONFIG))
    accumulated: bool = False  # KATO's emotives/metadata accumulators hold entries (since the last clear)
    stale: bool = False  # ... some of them from before a learn, which ours has reset (Q5)
    tainted_at_observe: dict[str, str] = field(default_factory=dict)  # the node's tainted patterns then


@dataclass
class NodeTrack:
    names: list[str] = field(default_factory=list)  # learned pattern hashes, in order
    tainted: dict[str, str] = field(default_factory=dict)  # pattern hash -> stance of its emotives/metadata
    vectors_seen: bool = False
    q15_armed: bool = False
    q15: bool = False
    vectors: VectorModel = field(default_factory=lambda: VectorModel())


class VectorModel:
    """A node's vector index as KATO keeps it (spec §5.5), to see when a nearest search meets a tie at its cut of
    3: stored points (float32) in first-insertion order, the pending buffer, the dimension."""

    def __init__(self) -> None:
        self.points: dict[str, np.ndarray] = {}
        self.buffer: list[np.ndarray] = []
        self.dim: int | None = None
        self.tie = False  # some search of the node had its 3rd and 4th nearest at the same distance

    def observe(self, vectors: list[list[float]]) -> None:
        try:
            total = np.asarray(vectors[0], dtype=np.float64)
            for vector in vectors[1:]:
                total = total + np.asarray(vector, dtype=np.float64)
        except ValueError:  # a length mismatch: refused, nothing buffered
            return
        if len(self.points) > 3 and self.dim is not None and (len(total) in (1, self.dim) or self.dim == 1):
            stored = np.stack(list(self.points.values()))
            distances = np.sort(np.linalg.norm(stored - total, axis=-1))
            self.tie = self.tie or bool(distances[2] == distances[3])
        self.buffer.append(total)

    def flush(self) -> None:
        """Every learn routine (spec §5.3): index the buffer in order, dropping another dimension."""
        for total in self.buffer:
            self.dim = self.dim or len(total)
            if len(total) == self.dim:
                self.points[str(total)] = total.astype(np.float32)  # a re-upsert keeps its first position
        self.buffer = []


class Tracker:
    """What the stances need to know about a scenario, updated from the steps and KATO's answers."""

    def __init__(self, scenario: Scenario) -> None:
        self.sessions = [SessionTrack(node) for node in scenario.sessions]
        self.nodes = [NodeTrack() for _ in range(scenario.nodes)]

    def node_of(self, step: dict[str, JSON]) -> NodeTrack:
        return self.nodes[self.sessions[step["s"]].node]

    def pick_pattern(self, step: dict[str, JSON]) -> str:
        names = self.node_of(step).names
        name = names[step["pick"] % len(names)] if names else UNKNOWN_PATTERN
        return ("PTRN|" + name) if step.get("prefix") else name

    def observed(self, session: SessionTrack, body: dict[str, JSON]) -> None:
        session.config_at_observe = dict(session.config)
        session.tainted_at_observe = dict(self.nodes[session.node].tainted)
        if body.get("emotives") or body.get("metadata"):
            session.accumulated = True
        if body.get("vectors"):
            node = self.nodes[session.node]
            node.vectors_seen = True
            node.q15 = node.q15 or node.q15_armed
            node.vectors.observe(body["vectors"])

    def learned(self, session: SessionTrack, name: str | None, auto: bool) -> None:
        node = self.nodes[session.node]
        node.vectors.flush()
        bare = (name or "").removeprefix("PTRN|")
        if bare:
            if bare not in node.names:
                node.names.append(bare)
            if auto and session.accumulated:
                node.tainted.setdefault(bare, "Q6")
            elif not auto and session.stale:
                node.tainted.setdefault(bare, "Q5")
        session.stale = session.stale or session.accumulated

    def update(self, step: dict[str, JSON], status: int, body: JSON) -> None:
        session = self.sessions[step["s"]]
        op = step["op"]
        if status != 200 or not isinstance(body, dict):
            return
        if op == "observe":
            self.observed(session, step["body"])
            if body.get("auto_learned_pattern"):
                self.learned(session, body["auto_learned_pattern"], auto=True)
        elif op == "observe-sequence":
            self.sequence(session, step["body"], body)
        elif op == "learn":
            self.learned(session, body.get("pattern_name"), auto=False)
        elif op in ("clear-stm", "clear-all"):
            session.accumulated = session.stale = False
            if op == "clear-all":
                self.cleared_node(session.node)
        elif op == "config":
            session.config.update(step["body"]["config"])
            if session.config.get("stm_mode") not in ("CLEAR", "ROLLING"):
                session.config["stm_mode"] = "CLEAR"

    def cleared_node(self, index: int) -> None:
        node = self.nodes[index]
        node.names.clear()
        node.tainted.clear()
        node.q15_armed = node.q15_armed or node.vectors_seen  # other sessions of the node keep their state
        node.vectors.buffer = []  # dropped unindexed; KATO keeps the stored points

    def sequence(self, session: SessionTrack, request: dict[str, JSON], answer: dict[str, JSON]) -> None:
        """Replay KATO's observe-sequence loop (spec §1.10) to attribute each learned name."""
        names = list(answer.get("auto_learned_patterns") or [])
        results = answer.get("results") or []
        stm_filled = bool(answer.get("initial_stm_length"))
        for i, item in enumerate(request["observations"]):
            if request.get("clear_stm_between") and i > 0:
                stm_filled = False
            self.observed(session, item)
            stm_filled = stm_filled or bool(item.get("strings") or item.get("vectors"))
            auto = results[i].get("auto_learned_pattern") if i < len(results) else None
            if auto:
                self.learned(session, auto, auto=True)
                stm_filled = session.config.get("stm_mode") == "ROLLING"
            if request.get("learn_after_each") and stm_filled:  # its name comes before the auto-learned one
                self.learned(session, names.pop(0) if names else "", auto=False)
                stm_filled = False
            if auto and names and names[0] == auto:
                names.pop(0)
        if answer.get("final_learned_pattern") is not None:
            self.learned(session, answer["final_learned_pattern"], auto=False)


@dataclass
class StepContext:
    """Which stances apply to the answers of one step."""

    q4: bool = False
    q5_emotives: bool = False
    q7: bool = False
    q7_full: bool = False  # ... and KATO's list reached max_predictions (its own ranking chose the survivors)
    q15: bool = False
    q16_vectors: bool = False  # a vector search of the node met a tie at its cut (this step's included)
    q16_pruning: bool = False  # the candidates tie on pre-potential across KATO's 3·max_predictions cut
    q18: bool = False
    empty: bool = False  # KATO's STM is empty (GET predictions)
    pattern: str = ""
    tainted: dict[str, str] = field(default_factory=dict)
    strict: bool = False

    def stance(self, path: str) -> str | None:
        if self.strict:
            return None
        if self.q15:
            return "Q15"
        if self.q18 and path.startswith(("predictions", "future_potentials", "count")):
            return "Q18"
        if self.empty and path.startswith("future_potentials"):
            return "EMPTY"
        if self.q4 and path.startswith("cognition_data.predictions"):
            return "Q4"
        if path.endswith("(tie at cap)"):
            return "Q16"
        if self.q7 and re.match(r"(cognition_data\.)?(predictions|future_potentials|count)", path) \
                and (self.q7_full or not path.endswith("{names}")):
            return "Q7"
        match = HASH_IN_PATH.search(path)
        if match and match.group(1) in self.tainted:
            return self.tainted[match.group(1)]
        if path.startswith(("pattern.pattern.emotives", "pattern.pattern.metadata")) and self.pattern in self.tainted:
            return self.tainted[self.pattern]
        if self.q5_emotives and path.startswith("cognition_data.emotives"):
            return "Q5"
        if self.q16_pruning and path.startswith(("predictions", "future_potentials", "count")):
            return "Q16"
        return "Q16" if self.q16_vectors else None  # last: a tie explains only what nothing else does


def observes_vectors(step: dict[str, JSON]) -> bool:
    body = step.get("body") or {}
    items = body.get("observations") if step["op"] == "observe-sequence" else [body]
    return step["op"] in ("observe", "observe-sequence") and any(item.get("vectors") for item in items or [])


def context_for(step: dict[str, JSON], tracker: Tracker, kato_stm: int | None, strict: bool) -> StepContext:
    session = tracker.sessions[step["s"]]
    node = tracker.node_of(step)
    config = session.config
    defaults = ("recall_threshold", "max_predictions", "use_token_matching")
    return StepContext(
        q4=any(session.config_at_observe.get(key) != DEFAULT_CONFIG[key] for key in defaults),
        q5_emotives=session.stale,
        q7=kato_stm == 1,
        empty=kato_stm == 0,
        q15=node.q15 or (node.q15_armed and observes_vectors(step)),
        q18=step["op"] == "predictions" and config.get("use_token_matching") is False
        and config.get("recall_threshold") == 0.0,
        pattern=tracker.pick_pattern(step).removeprefix("PTRN|") if step["op"] == "pattern" else "",
        tainted={**session.tainted_at_observe, **node.tainted} if step["op"] == "cognition-data"
        else dict(node.tainted),  # cognition-data shows predictions of the last observe, maybe before a clear-all
        strict=strict,
    )


# ------------------------------------------------------------------------------------------------ comparison

def is_number(value: JSON) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def short(value: JSON, limit: int = 160) -> str:
    text = json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def rank(value: JSON) -> float:
    """A ranking value rounded to 9 significant digits, so float noise does not split a tie."""
    return float(f"{value:.9g}") if is_number(value) else -math.inf


class Comparer:
    """Structural JSON comparison; counts numbers that agree exactly and only within the tolerance."""

    def __init__(self) -> None:
        self.exact = 0
        self.tolerant: Counter[str] = Counter()
        self.tolerant_example: dict[str, str] = {}
        self.tie_only = 0

    def compare(self, ours: JSON, kato: JSON, path: str, out: list[Raw]) -> None:
        if isinstance(ours, dict) and isinstance(kato, dict):
            for key in sorted(set(ours) | set(kato)):
                sub = f"{path}.{key}" if path else key
                if key not in ours or key not in kato:
                    side = "ours" if key not in ours else "kato"
                    out.append((sub, f"missing in {side}; other={short(ours.get(key, kato.get(key)))}"))
                else:
                    self.compare(ours[key], kato[key], sub, out)
        elif isinstance(ours, list) and isinstance(kato, list):
            if len(ours) != len(kato):
                out.append((path, f"length ours={len(ours)} kato={len(kato)}; ours={short(ours)} kato={short(kato)}"))
                return
            for i, (item_o, item_k) in enumerate(zip(ours, kato)):
                self.compare(item_o, item_k, f"{path}[{i}]", out)
        elif is_number(ours) and is_number(kato):
            self.number(ours, kato, path, out)
        elif type(ours) is not type(kato) or ours != kato:
            out.append((path, f"ours={short(ours)} kato={short(kato)}"))

    def number(self, ours: float, kato: float, path: str, out: list[Raw]) -> None:
        if isinstance(ours, int) != isinstance(kato, int):
            out.append((path + ":type", f"ours={ours!r} ({type(ours).__name__}) kato={kato!r} "
                                        f"({type(kato).__name__})"))
        elif ours == kato:
            self.exact += 1
        elif math.isclose(ours, kato, rel_tol=REL_TOL, abs_tol=ABS_TOL):
            self.tolerant[fold(path)] += 1
            self.tolerant_example.setdefault(fold(path), f"ours={ours!r} kato={kato!r}")
        else:
            out.append((path, f"ours={ours!r} kato={kato!r}"))

    def predictions(self, ours: JSON, kato: JSON, prefix: str, cap: int, out: list[Raw]) -> None:
        """Pair predictions by name; report the name sets, the fields, and the order beyond ties."""
        if not (isinstance(ours, list) and isinstance(kato, list)):
            self.compare(ours, kato, prefix + "predictions", out)
            return
        by_o = {p.get("name"): p for p in ours if isinstance(p, dict)}
        by_k = {p.get("name"): p for p in kato if isinstance(p, dict)}
        only_o, only_k = set(by_o) - set(by_k), set(by_k) - set(by_o)
        tie_o, tie_k = cut_ties(ours, only_o, cap), cut_ties(kato, only_k, cap)
        if tie_o or tie_k:
            out.append((prefix + "predictions(tie at cap)", f"only ours: {sorted(tie_o)} only kato: {sorted(tie_k)}"))
        if only_o - tie_o or only_k - tie_k:
            out.append((prefix + "predictions{names}",
                        f"only ours: {sorted(only_o - tie_o)} only kato: {sorted(only_k - tie_k)}"))
        before = len(out)
        common = sorted(set(by_o) & set(by_k), key=str)
        for name in common:
            self.compare(by_o[name], by_k[name], f"{prefix}predictions[{name}]", out)
        if not any(p.endswith((".potential", ".similarity")) for p, _ in out[before:]):
            self.order(ours, kato, set(common), prefix, out)

    def order(self, ours: list[JSON], kato: list[JSON], common: set[str], prefix: str, out: list[Raw]) -> None:
        groups_o, groups_k = tie_groups(ours, common), tie_groups(kato, common)
        if groups_o != groups_k:
            out.append((prefix + "predictions(raw order beyond ties)",
                        f"ours={[sorted(g) for g in groups_o]} kato={[sorted(g) for g in groups_k]}"))
        elif names_in_order(ours, common) != names_in_order(kato, common):
            self.tie_only += 1

    def futures(self, ours: JSON, kato: JSON, out: list[Raw]) -> None:
        def key(item: JSON) -> tuple[float, str]:
            potential = item.get("aggregate_potential") if isinstance(item, dict) else None
            future = item.get("future") if isinstance(item, dict) else item
            return -rank(potential), json.dumps(future, sort_keys=True)
        if isinstance(ours, list) and isinstance(kato, list):
            ours, kato = sorted(ours, key=key), sorted(kato, key=key)
        self.compare(ours, kato, "future_potentials", out)


def names_in_order(predictions: list[JSON], common: set[str]) -> list[str]:
    return [p.get("name") for p in predictions if isinstance(p, dict) and p.get("name") in common]


def tie_groups(predictions: list[JSON], common: set[str]) -> list[frozenset[str]]:
    """The raw list cut into runs of equal potential, as sets of names (restricted to `common`)."""
    groups: list[tuple[float, set[str]]] = []
    for p in predictions:
        if not isinstance(p, dict) or p.get("name") not in common:
            continue
        potential = rank(p.get("potential"))
        if groups and groups[-1][0] == potential:
            groups[-1][1].add(p["name"])
        else:
            groups.append((potential, {p["name"]}))
    return [frozenset(names) for _, names in groups]


def cut_ties(predictions: list[JSON], only: set[str], cap: int) -> set[str]:
    """Names of `only` that sit in the lowest tie group of a list cut at `cap` (their presence is arbitrary)."""
    if len(predictions) < cap or not only:
        return set()
    lowest = min(rank(p.get("potential")) for p in predictions if isinstance(p, dict))
    return {p.get("name") for p in predictions
            if isinstance(p, dict) and p.get("name") in only and rank(p.get("potential")) == lowest}


def compare_answers(op: str, ours: JSON, kato: JSON, cap: int, comparer: Comparer) -> list[Raw]:
    out: list[Raw] = []
    if op == "predictions" and isinstance(ours, dict) and isinstance(kato, dict):
        rest_o, rest_k = dict(ours), dict(kato)
        comparer.predictions(rest_o.pop("predictions", None), rest_k.pop("predictions", None), "", cap, out)
        comparer.futures(rest_o.pop("future_potentials", None), rest_k.pop("future_potentials", None), out)
        comparer.compare(rest_o, rest_k, "", out)
    elif op == "cognition-data" and isinstance(ours, dict) and isinstance(kato, dict):
        data_o, data_k = dict(ours.get("cognition_data") or {}), dict(kato.get("cognition_data") or {})
        prefix = "cognition_data."
        comparer.predictions(data_o.pop("predictions", None), data_k.pop("predictions", None), prefix, cap, out)
        comparer.compare({**ours, "cognition_data": data_o}, {**kato, "cognition_data": data_k}, "", out)
    else:
        comparer.compare(ours, kato, "", out)
    return out


def fold(path: str) -> str:
    """A concrete JSON path to its kind: list indices and prediction names become [], emotive/metadata keys *."""
    path = re.sub(r"\[[^\]]*\]", "[]", path)
    return re.sub(r"\.(emotives|metadata)\..*$", r".\1.*", path) or "<body>"


# ------------------------------------------------------------------------------------------------ running

@dataclass
class Diff:
    kind: str  # endpoint + folded JSON path
    stance: str | None
    step: int  # index in the scenario's steps; -1 = session creation
    detail: str


def endpoint(step: dict[str, JSON]) -> str:
    op = step["op"]
    if op == "pattern":
        return "GET /pattern/{name}"
    return f"{'POST' if op in SESSION_POSTS else 'GET'} /sessions/{{id}}/{op}"


def request_for(step: dict[str, JSON], svc: Service, tracker: Tracker) -> tuple[str, str, JSON, dict | None]:
    op = step["op"]
    if op == "pattern":
        node = svc.nodes[tracker.sessions[step["s"]].node]
        return "GET", f"/pattern/{tracker.pick_pattern(step)}", None, {"node_id": node}
    sid = svc.sessions[step["s"]]
    return ("POST" if op in SESSION_POSTS else "GET"), f"/sessions/{sid}/{op}", step.get("body"), None


def flat_stm_length(svc: Service, step: dict[str, JSON]) -> int | None:
    status, body = svc.call("GET", f"/sessions/{svc.sessions[step['s']]}/stm")
    if status != 200 or not isinstance(body, dict):
        return None
    return sum(len(event) for event in body.get("stm") or [])


def cap_for(step: dict[str, JSON], tracker: Tracker) -> int:
    if step["op"] == "cognition-data":
        return DEFAULT_CONFIG["max_predictions"]  # KATO's observe-time pass (Q4)
    return int(tracker.sessions[step["s"]].config.get("max_predictions") or DEFAULT_CONFIG["max_predictions"])


def run_step(index: int, step: dict[str, JSON], pair: tuple[Service, Service], tracker: Tracker,
             comparer: Comparer, strict: bool) -> list[Diff]:
    ours, kato = pair
    kato_stm = flat_stm_length(kato, step) if step["op"] == "predictions" else None
    answers = []
    for svc in pair:
        method, path, body, params = request_for(step, svc, tracker)
        status, data = svc.call(method, path, body, params)
        answers.append((status, normalise(data, svc.ids())))
    (status_o, body_o), (status_k, body_k) = answers
    ctx = context_for(step, tracker, kato_stm, strict)
    if step["op"] == "cognition-data" and kato_predictions_flat(body_k):
        ctx.q7 = True
    ctx.q7_full = ctx.q7 and count_predictions(body_k) >= cap_for(step, tracker)
    raw: list[Raw] = []
    if status_o != status_k:
        raw.append(("<status>", f"ours={status_o} kato={status_k}; ours={short(body_o)} kato={short(body_k)}"))
    else:
        raw = compare_answers(step["op"], body_o, body_k, cap_for(step, tracker), comparer)
    if step["op"] == "predictions" and not strict and any(ctx.stance(path) is None for path, _ in raw):
        ctx.q16_pruning = probe_pruning_tie(kato, step, tracker)
    tracker.update(step, status_k, body_k)
    ctx.q16_vectors = ctx.q16_vectors or (not strict and tracker.node_of(step).vectors.tie)
    diffs = []
    for path, detail in raw:
        stance = ctx.stance(path)
        kind = fold(path) if stance is None else coarse(path, stance)
        diffs.append(Diff(f"{endpoint(step)} {kind}", stance, index, detail if kind == fold(path) else
                          f"{fold(path)}: {detail}"))
    return diffs


def pre_potential(prediction: dict[str, JSON]) -> float:
    """KATO's pruning key (spec §2.7 step 1): ``(evidence + confidence)·snr + f``, from a prediction's own fields."""
    fragmentation = prediction["fragmentation"]
    f = 0.0 if fragmentation == -1 else 1.0 / (fragmentation + 1)
    return (prediction["evidence"] + prediction["confidence"]) * prediction["snr"] + f


def tie_at_pruning_cut(candidates: list[dict[str, JSON]], max_predictions: int) -> bool:
    """Whether KATO's pruning to ``3·max_predictions`` candidates must choose among equal pre-potentials: it
    keeps them in its set order (hash-randomised per process), and the kept set changes the ensemble fields
    (itfdf_similarity, potential, bayesian_*, future_potentials) of every prediction."""
    cut = 3 * max_predictions
    keys = sorted((pre_potential(c) for c in candidates), reverse=True)
    return len(keys) > cut and keys[cut - 1] == keys[cut]


def probe_pruning_tie(svc: Service, step: dict[str, JSON], tracker: Tracker) -> bool:
    """``tie_at_pruning_cut`` over every candidate of the session's STM, asked of a throwaway session of the same
    node with no cap: the STM re-observed as strings (no vector is buffered), no auto-learn, then deleted."""
    session = tracker.sessions[step["s"]]
    status, body = svc.call("GET", f"/sessions/{svc.sessions[step['s']]}/stm")
    stm = body.get("stm") if status == 200 and isinstance(body, dict) else None
    if not stm or sum(len(event) for event in stm) < 2:
        return False
    status, created = svc.call("POST", "/sessions", {"node_id": svc.nodes[session.node]})
    if status != 200 or not isinstance(created, dict):
        return False
    probe = created["session_id"]
    try:
        config = {**session.config, "max_predictions": PROBE_CAP, "max_pattern_length": 0}
        svc.call("POST", f"/sessions/{probe}/config", {"config": config})
        for event in stm:
            svc.call("POST", f"/sessions/{probe}/observe", {"strings": event})
        status, answer = svc.call("GET", f"/sessions/{probe}/predictions")
    finally:
        svc.call("DELETE", f"/sessions/{probe}")
    candidates = answer.get("predictions") if status == 200 and isinstance(answer, dict) else None
    return bool(candidates) and tie_at_pruning_cut(candidates, cap_for(step, tracker))


def coarse(path: str, stance: str) -> str:
    """Excluded differences are grouped coarser: per prediction list (Q4, Q7, Q18) or per endpoint (Q15)."""
    if stance == "Q15" or (stance == "Q16" and not path.endswith("(tie at cap)")):
        return "<any>"
    if stance in ("Q4", "Q7", "Q18"):
        return re.sub(r"(predictions)(\[[^\]]*\]\..*|\{names\}|\(.*\))$", r"\1[].*", fold(path))
    return fold(path)


def count_predictions(body: JSON) -> int:
    if not isinstance(body, dict):
        return 0
    predictions = body.get("predictions", (body.get("cognition_data") or {}).get("predictions"))
    return len(predictions) if isinstance(predictions, list) else 0


def kato_predictions_flat(body: JSON) -> bool:
    """KATO's single-symbol path (Q7) shows in its answer: predictions without `type`."""
    predictions = (body.get("cognition_data") or {}).get("predictions") if isinstance(body, dict) else None
    return any(isinstance(p, dict) and "type" not in p for p in predictions or [])


def create_sessions(scenario: Scenario, pair: tuple[Service, Service], comparer: Comparer) -> list[Diff]:
    diffs: list[Diff] = []
    for svc in pair:
        svc.nodes = [f"dt{uuid.uuid4().hex[:12]}" for _ in range(scenario.nodes)]
        svc.sessions = []
    for node in scenario.sessions:
        answers = []
        for svc in pair:
            status, body = svc.call("POST", "/sessions", {"node_id": svc.nodes[node]})
            if status != 200:
                raise RuntimeError(f"{svc.name}: POST /sessions answered {status}: {short(body)}")
            svc.sessions.append(body["session_id"])
            answers.append(normalise(body, svc.ids()))
        raw: list[Raw] = []
        comparer.compare(answers[0], answers[1], "", raw)
        diffs += [Diff(f"POST /sessions {fold(path)}", None, -1, detail) for path, detail in raw]
    return diffs


def run_scenario(scenario: Scenario, urls: tuple[str, str], comparer: Comparer, strict: bool = False,
                 on_step: Callable[[int, list[Diff]], None] | None = None,
                 until: Callable[[list[Diff]], bool] | None = None) -> list[Diff]:
    """Create the sessions on fresh nodes of both services, run every step, return the differences."""
    pair = (Service("ours", urls[0]), Service("kato", urls[1]))
    tracker = Tracker(scenario)
    diffs = create_sessions(scenario, pair, comparer)
    for index, step in enumerate(scenario.steps):
        found = run_step(index, step, pair, tracker, comparer, strict)
        if on_step:
            on_step(index, found)
        diffs += found
        if until and until(found):
            break
    return diffs


# ------------------------------------------------------------------------------------------------ minimising

def minimise(scenario: Scenario, kind: tuple[str | None, str], first: int, urls: tuple[str, str],
             budget: int, strict: bool) -> tuple[list[dict[str, JSON]], str]:
    """Shrink the failing prefix (drop chunks of steps, then simplify bodies) while the kind still shows."""

    def fails(candidate: list[dict[str, JSON]]) -> str | None:
        if not candidate:
            return None
        trial = Scenario(scenario.index, scenario.nodes, scenario.sessions, candidate)
        found = run_scenario(trial, urls, Comparer(), strict,
                             until=lambda diffs: any((d.stance, d.kind) == kind for d in diffs))
        return next((d.detail for d in found if (d.stance, d.kind) == kind), None)

    tries = [budget]
    steps, detail = drop_chunks(scenario.steps[: first + 1], fails, tries)
    steps, detail = simplify_steps(steps, detail, fails, tries)
    return steps, detail or (fails(steps) or "")


def drop_chunks(steps: list[dict[str, JSON]], fails: Callable[[list[dict[str, JSON]]], str | None],
                tries: list[int]) -> tuple[list[dict[str, JSON]], str]:
    """ddmin-style: remove halves, quarters, ... single steps, keeping every removal that still fails."""
    detail, chunks = "", 2
    while len(steps) > 1 and tries[0] > 0:
        size = math.ceil(len(steps) / chunks)
        for start in range(0, len(steps), size):
            if tries[0] <= 0:
                break
            tries[0] -= 1
            candidate = steps[:start] + steps[start + size:]
            found = fails(candidate)
            if found is not None:
                steps, detail, chunks = candidate, found, max(chunks - 1, 2)
                break
        else:
            if size == 1:
                break
            chunks = min(chunks * 2, len(steps))
    return steps, detail


def simplify_steps(steps: list[dict[str, JSON]], detail: str, fails: Callable[[list[dict[str, JSON]]], str | None],
                   tries: list[int]) -> tuple[list[dict[str, JSON]], str]:
    """Try simpler variants of each remaining step (fewer sequence items, no emotives/metadata/flags)."""
    improved = True
    while improved and tries[0] > 0:
        improved = False
        for i, step in enumerate(steps):
            for variant in simplifications(step):
                if tries[0] <= 0:
                    return steps, detail
                tries[0] -= 1
                candidate = steps[:i] + [variant] + steps[i + 1:]
                found = fails(candidate)
                if found is not None:
                    steps, detail, improved = candidate, found, True
                    break
            if improved:
                break
    return steps, detail


def without(mapping: dict[str, JSON], key: str) -> dict[str, JSON]:
    return {k: v for k, v in mapping.items() if k != key}


def simplifications(step: dict[str, JSON]) -> list[dict[str, JSON]]:
    body = step.get("body")
    if not isinstance(body, dict):
        return []
    if step["op"] == "config":
        config = body["config"]
        return [{**step, "body": {"config": without(config, key)}} for key in config if len(config) > 1]
    if step["op"] == "observe":
        return [{**step, "body": without(body, key)} for key in ("emotives", "metadata", "vectors", "strings")
                if key in body and len(body) > 1]
    items = body.get("observations") or []
    variants = [{**step, "body": {**body, "observations": items[:j] + items[j + 1:]}}
                for j in range(len(items)) if len(items) > 1]
    variants += [{**step, "body": without(body, flag)} for flag in body if flag != "observations"]
    for j, item in enumerate(items):
        for key in ("emotives", "metadata", "unique_id", "vectors"):
            if key in item:
                simpler = items[:j] + [without(item, key)] + items[j + 1:]
                variants.append({**step, "body": {**body, "observations": simpler}})
    return variants


# ------------------------------------------------------------------------------------------------ reporting

@dataclass
class KindReport:
    count: int = 0
    scenarios: set[int] = field(default_factory=set)
    first: tuple[int, int, str] = (0, 1 << 30, "")  # (scenario, step, detail) with the smallest step
    repro: list[dict[str, JSON]] = field(default_factory=list)
    repro_detail: str = ""
    minimised: bool = False


def group(results: list[tuple[Scenario, list[Diff]]]) -> dict[tuple[str | None, str], KindReport]:
    kinds: dict[tuple[str | None, str], KindReport] = {}
    for scenario, diffs in results:
        for diff in diffs:
            report = kinds.setdefault((diff.stance, diff.kind), KindReport())
            report.count += 1
            report.scenarios.add(scenario.index)
            if diff.step < report.first[1]:
                report.first = (scenario.index, diff.step, diff.detail)
    return kinds


def add_repros(kinds: dict[tuple[str | None, str], KindReport], scenarios: dict[int, Scenario],
               urls: tuple[str, str], args: argparse.Namespace) -> None:
    for kind, report in kinds.items():
        index, step, detail = report.first
        scenario = scenarios[index]
        budget = args.budget if kind[0] is None else args.stance_budget
        if args.no_minimise or step < 0 or budget <= 0:
            report.repro, report.repro_detail = scenario.steps[: max(step, -1) + 1], detail
            continue
        report.repro, report.repro_detail = minimise(scenario, kind, step, urls, budget, args.strict)
        report.minimised = True


def step_line(step: dict[str, JSON]) -> str:
    extra = {key: value for key, value in step.items() if key not in ("op", "s")}
    return f"s{step['s']} {step['op']}" + (f" {json.dumps(extra, sort_keys=True)}" if extra else "")


def print_kind(kind: tuple[str | None, str], report: KindReport, scenario: Scenario) -> None:
    label = f"[{kind[0]}] " if kind[0] else ""
    print(f"\n* {label}{kind[1]}: {report.count} occurrences in {len(report.scenarios)} scenarios")
    print(f"  e.g. {report.first[2]}")
    state = "minimised" if report.minimised else "prefix, not minimised"
    sessions = ", ".join(f"s{i}->node{node}" for i, node in enumerate(scenario.sessions))
    print(f"  reproduction ({state}; nodes={scenario.nodes}; {sessions}):")
    for number, step in enumerate(report.repro, 1):
        print(f"    {number:2d}. {step_line(step)}")
    if report.repro_detail:
        print(f"    -> {report.repro_detail}")


def print_summary(kinds: dict[tuple[str | None, str], KindReport], scenarios: dict[int, Scenario],
                  comparer: Comparer) -> None:
    real = sorted((k for k in kinds if k[0] is None), key=lambda k: k[1])
    excluded = sorted((k for k in kinds if k[0] is not None), key=lambda k: (k[0] or "", k[1]))
    print(f"\n=== {len(real)} difference kinds not explained by a known stance")
    for kind in real:
        print_kind(kind, kinds[kind], scenarios[kinds[kind].first[0]])
    print(f"\n=== {len(excluded)} difference kinds excluded by known stances (spec §8)")
    for stance in sorted({k[0] for k in excluded if k[0]}):
        print(f"  {stance}: {STANCES[stance]}")
    for kind in excluded:
        print_kind(kind, kinds[kind], scenarios[kinds[kind].first[0]])
    tolerant = sum(comparer.tolerant.values())
    print(f"\n=== numbers: {comparer.exact} equal exactly, {tolerant} equal only within rel 1e-9")
    for path, count in comparer.tolerant.most_common(10):
        print(f"  {count:6d}  {path}  (e.g. {comparer.tolerant_example[path]})")
    print(f"=== predictions whose raw order differed only among ties (Q16, not reported): {comparer.tie_only}")


def scenario_line(scenario: Scenario, diffs: list[Diff]) -> str:
    real = [d for d in diffs if d.stance is None]
    stances = Counter(d.stance for d in diffs if d.stance)
    text = f"scenario {scenario.index:3d} nodes={scenario.nodes} sessions={len(scenario.sessions)} " \
           f"steps={len(scenario.steps)}: "
    text += f"{len(real)} differences in {len({d.kind for d in real})} kinds" if real else "no differences"
    if stances:
        text += "; excluded " + ", ".join(f"{k}:{v}" for k, v in sorted(stances.items()))
    return text


# ------------------------------------------------------------------------------------------------ main

def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tests.tools.kato_differential",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--ours", required=True, help="base URL of kato-cluster")
    parser.add_argument("--kato", required=True, help="base URL of KATO 3.10.1")
    parser.add_argument("--scenarios", type=int, default=20)
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--focus", choices=FOCUSES, default="mixed")
    parser.add_argument("--budget", type=int, default=30, help="replays to minimise each unexplained kind")
    parser.add_argument("--stance-budget", type=int, default=6, help="replays to minimise each excluded kind")
    parser.add_argument("--no-minimise", action="store_true")
    parser.add_argument("--strict", action="store_true", help="do not label differences with known stances")
    parser.add_argument("--json", help="write every scenario and difference to this file")
    parser.add_argument("--replay", metavar="FILE[#N]",
                        help="replay one reproduction verbosely: a JSON {nodes, sessions, steps}, or kind N of a "
                             "--json dump")
    return parser.parse_args(argv)


def replay(path: str, urls: tuple[str, str], strict: bool) -> int:
    """Replay {"nodes", "sessions", "steps"} from FILE, or the N-th kind of a --json dump with FILE#N."""
    path, _, number = path.partition("#")
    with open(path, encoding="utf-8") as fh:
        data = json.load(fh)
    if "kinds" in data:
        data = data["kinds"][int(number or 0)]
    scenario = Scenario(0, int(data["nodes"]), list(data["sessions"]), list(data["steps"]))

    def show(index: int, found: list[Diff]) -> None:
        print(f"{index + 1:3d}. {step_line(scenario.steps[index])}")
        for diff in found:
            print(f"       {'[' + diff.stance + '] ' if diff.stance else ''}{diff.kind}: {diff.detail}")

    diffs = run_scenario(scenario, urls, Comparer(), strict, on_step=show)
    return 1 if any(d.stance is None for d in diffs) else 0


def dump(path: str, results: list[tuple[Scenario, list[Diff]]],
         kinds: dict[tuple[str | None, str], KindReport]) -> None:
    """Every scenario with its differences, and per kind its reproduction (replayable with --replay)."""
    scenarios = {sc.index: sc for sc, _ in results}
    rows = [{"stance": stance, "kind": kind, "count": report.count, "scenarios": sorted(report.scenarios),
             "detail": report.repro_detail, "nodes": scenarios[report.first[0]].nodes,
             "sessions": scenarios[report.first[0]].sessions, "steps": report.repro}
            for (stance, kind), report in sorted(kinds.items(), key=lambda item: (item[0][0] or "", item[0][1]))]
    runs = [{"index": sc.index, "nodes": sc.nodes, "sessions": sc.sessions, "steps": sc.steps,
             "diffs": [vars(d) for d in diffs]} for sc, diffs in results]
    with open(path, "w", encoding="utf-8") as fh:
        json.dump({"kinds": rows, "scenarios": runs}, fh, indent=1)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    urls = (args.ours, args.kato)
    for name, url in zip(("ours", "kato"), urls):
        if not Service(name, url).healthy():
            print(f"{name} at {url} does not answer GET /health (healthy or degraded)", file=sys.stderr)
            return 2
    if args.replay:
        return replay(args.replay, urls, args.strict)
    print(f"focus={args.focus} seed={args.seed} scenarios={args.scenarios} steps={args.steps}")
    comparer = Comparer()
    results = []
    for index in range(args.scenarios):
        scenario = generate(args.seed, args.focus, index, args.steps)
        diffs = run_scenario(scenario, urls, comparer, args.strict)
        print(scenario_line(scenario, diffs), flush=True)
        results.append((scenario, diffs))
    kinds = group(results)
    add_repros(kinds, {sc.index: sc for sc, _ in results}, urls, args)
    print_summary(kinds, {sc.index: sc for sc, _ in results}, comparer)
    if args.json:
        dump(args.json, results, kinds)
    return 1 if any(stance is None for stance, _ in kinds) else 0


if __name__ == "__main__":
    sys.exit(main())
