"""Vector scenarios of spec §5 with the answers real KATO 3.10.1 gave (recorded with an exact vector index).

Each scenario drives one fresh node through a ``Node`` (the reference KATO in-process, or the HTTP service)
and returns what it saw; ``EXPECTED`` holds KATO's answers to the digit. The same scenarios run against the
reference (``tests/unit/test_vectors.py``) and the HTTP service (``tests/e2e/test_http_vectors.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

JSON = Any

V1000 = "VCTR|2fb865b4597f2549eff7585cc6d16cc1fea9b5b5"  # [1, 0, 0, 0]
V0100 = "VCTR|f1eaab3206c6e5f3d723cbadc690c5ed586bbfb7"  # [0, 1, 0, 0]
V0010 = "VCTR|5230ba00011095bb2e944b19e5d009b8a0024682"  # [0, 0, 1, 0]
V0001 = "VCTR|b1ed7ffad4ab7746c32a59c83de84364a5c67163"  # [0, 0, 0, 1]
V09 = "VCTR|e3982c3e17284e65d5cd8419a973e35667f48a4c"  # [0.9, 0, 0, 0]
V01 = "VCTR|b096aaaef4deafe9fe1895efc4b2650fc980d9c3"  # [0.1, 0, 0, 0]
V3333 = "VCTR|188d6da21060e7003689300a9813013f7354f3f4"  # [3, 3, 3, 3]
V10 = "VCTR|b2ee9b10732bd3dcfa2ecc8ee3c56ceed36ddcfc"  # [1, 0]
V_EMPTY = "VCTR|97d170e1550eee4afc0af065b78cda302a97674c"  # []


class Session(Protocol):
    def observe(self, **body: JSON) -> tuple[int, JSON]: ...

    def observe_sequence(self, **body: JSON) -> tuple[int, JSON]: ...

    def learn(self) -> tuple[int, JSON]: ...

    def stm(self) -> list[list[str]]: ...

    def clear_stm(self) -> None: ...

    def clear_all(self) -> None: ...

    def update_config(self, config: dict[str, JSON]) -> None: ...


Node = Callable[..., Session]  # a new session on the scenario's node (optional session config)


def _observe_all(s: Session, *vectors: list[float]) -> None:
    for v in vectors:
        assert s.observe(vectors=[v])[0] == 200


def reobserve_stored(node: Node) -> JSON:
    """§5.2: the own point is not excluded (own + 2 others); a length-1 query broadcasts; a 2-d query against
    4-d points and an empty vector find nothing."""
    s = node()
    _observe_all(s, [1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1])
    seen = [s.learn()[1]["pattern_name"]]
    for probe in ([1, 0, 0, 0], [0.5], [1, 0], []):
        s.clear_stm()
        s.observe(vectors=[probe])
        seen.append(s.stm())
    return seen


def other_session_learn_indexes(node: Node) -> JSON:
    """§5.3: a vector observed in one session is indexed by another session's learn on the node, and a
    one-symbol learn stores nothing ("") but still indexes."""
    s0, s1 = node(), node()
    s0.observe(vectors=[[1, 0, 0, 0]])
    s1.observe(strings=["a"])
    seen = [s1.learn()[1]["pattern_name"]]
    s0.observe(vectors=[[0, 1, 0, 0]])
    return [*seen, s0.stm()]


def float32_near_tie(node: Node) -> JSON:
    """§5.2: stored points are float32, the query float64: 0.1 (f32 0.10000000149) is nearer 0.2 than 0.3."""
    s = node()
    _observe_all(s, [0.1, 0, 0, 0], [0.3, 0, 0, 0], [0.2, 0, 0, 0.01], [0.2, 0, 0, -0.01])
    s.learn()
    s.observe(vectors=[[0.2, 0, 0, 0]])
    return s.stm()


def ties_by_insertion(node: Node) -> JSON:
    """§5.2, Q16: four points at distance √2; the first three inserted win."""
    s = node()
    _observe_all(s, [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1], [0, -1, 0, 0])
    s.learn()
    s.observe(vectors=[[1, 0, 0, 0]])
    return s.stm()


def clear_stm_keeps_buffer(node: Node) -> JSON:
    s = node()
    s.observe(vectors=[[1, 0, 0, 0]])
    s.clear_stm()
    s.observe(strings=["a"])
    seen = [s.learn()[1]["pattern_name"]]
    s.observe(vectors=[[0.9, 0, 0, 0]])
    return [*seen, s.stm()]


def clear_all_drops_buffer(node: Node) -> JSON:
    s = node()
    s.observe(vectors=[[1, 0, 0, 0]])
    s.clear_all()
    s.observe(strings=["a"])
    seen = [s.learn()[1]["pattern_name"]]
    s.observe(vectors=[[0.9, 0, 0, 0]])
    return [*seen, s.stm()]


def empty_stm_learn_does_not_flush(node: Node) -> JSON:
    s0, s1 = node(), node()
    s0.observe(vectors=[[1, 0, 0, 0]])
    seen = [s1.learn()[0]]
    s0.observe(vectors=[[0.9, 0, 0, 0]])
    return [*seen, s0.stm()]


def search_before_buffering(node: Node) -> JSON:
    """§5.2: the current vector is buffered after its search; buffered vectors are invisible to searches."""
    s = node()
    _observe_all(s, [1, 0, 0, 0], [1, 0, 0, 0], [0.9, 0, 0, 0])
    return s.stm()


def broadcasting_sum(node: Node) -> JSON:
    """§5.1: a length-1 vector is added to every element; any other mismatch is a 400 and buffers nothing."""
    s = node()
    codes = [s.observe(vectors=[[1] * 4, [2]])[0], s.observe(vectors=[[3] * 4])[0],
             s.observe(vectors=[[2], [1, 1, 1, 1]])[0], s.observe(vectors=[[1, 2], [1, 2, 3]])[0]]
    seen = [codes, s.stm(), s.learn()[1]["pattern_name"]]
    s.observe(vectors=[[3, 3, 3, 3.1]])
    return [*seen, s.stm()]


def dimension_mismatch_at_flush(node: Node) -> JSON:
    """§5.3: the first flushed vector fixes the dimension; a buffered vector of another length is dropped."""
    s = node()
    _observe_all(s, [1, 0, 0, 0], [1, 0])
    seen = [s.learn()[1]["pattern_name"]]
    for probe in ([1, 0], [0.9, 0, 0, 0]):
        s.observe(vectors=[probe])
        seen.append(s.stm())
    return seen


def dimension_fixed_by_first_flushed(node: Node) -> JSON:
    """§5.2–§5.3: a 2-d first vector fixes dimension 2; a length-1 query broadcasts against it."""
    s = node()
    _observe_all(s, [1, 0], [1, 0, 0, 0])
    seen = [s.learn()[1]["pattern_name"]]
    for probe in ([1, 0, 0, 0], [0.9, 0.1], [7]):
        s.observe(vectors=[probe])
        seen.append(s.stm())
    return seen


def empty_vector_fixes_dimension_zero(node: Node) -> JSON:
    s = node()
    s.observe(vectors=[[]])
    s.observe(strings=["a"])
    seen = [s.learn()[1]["pattern_name"]]
    _observe_all(s, [1, 0, 0, 0])
    s.learn()
    _observe_all(s, [0.9, 0, 0, 0], [])
    return [*seen, s.stm()]


def learn_after_each_flushes(node: Node) -> JSON:
    s0, s1 = node(), node()
    s0.observe(vectors=[[0, 0, 1, 0]])
    _, body = s1.observe_sequence(learn_after_each=True, observations=[
        {"vectors": [[1, 0, 0, 0]]}, {"vectors": [[0.9, 0, 0, 0]]}, {"strings": ["x"], "vectors": [[0, 1, 0, 0]]}])
    s0.observe(vectors=[[0, 0, 0.9, 0]])
    return [body["auto_learned_patterns"], [r["stm_length"] for r in body["results"]], body["final_stm_length"],
            s0.stm()]


def learn_at_end_flushes(node: Node) -> JSON:
    s = node()
    s.observe_sequence(learn_at_end=True, observations=[{"vectors": [[1, 0, 0, 0]]}, {"vectors": [[0.9, 0, 0, 0]]}])
    s.observe(vectors=[[0.8, 0, 0, 0]])
    return s.stm()


def auto_learn_flushes(node: Node) -> JSON:
    """§5.3: auto-learn indexes the buffer including the current observation's vector."""
    s = node({"max_pattern_length": 1})
    seen = [s.observe(vectors=[[1, 0, 0, 0]])[1]["auto_learned_pattern"]]
    s.observe(vectors=[[0.9, 0, 0, 0]])
    s.update_config({"max_pattern_length": 0})
    s.observe(vectors=[[0.8, 0, 0, 0]])
    return [*seen, s.stm()]


def reindex_overwrites_keeps_position(node: Node) -> JSON:
    """§5.3: [0.01, 0] and [0.010000003, 0] print alike (one name); the second overwrites the first's point."""
    s = node()
    _observe_all(s, [0.01, 0], [0.02, 0])
    s.learn()
    _observe_all(s, [0.010000003, 0])
    seen = [s.stm()]
    s.learn()
    s.clear_stm()
    _observe_all(s, [0.0150000015, 0])
    return [*seen, s.stm()]


def duplicates_in_buffer(node: Node) -> JSON:
    s = node()
    _observe_all(s, [1, 0], [0, 1], [1, 0])
    s.learn()
    _observe_all(s, [1, 1])
    return s.stm()


def one_dimensional_space(node: Node) -> JSON:
    s = node()
    _observe_all(s, [1], [2])
    s.learn()
    _observe_all(s, [1, 2, 3], [])
    return s.stm()


def observe_sequence_stm_length(node: Node) -> JSON:
    """§1.10: each item's stm_length is measured after its learn_after_each learn."""
    s = node()
    _, body = s.observe_sequence(learn_after_each=True, observations=[{"strings": ["bc", "b", "cart"]}])
    _, other = s.observe_sequence(learn_after_each=True, observations=[{"strings": ["a"]}, {"strings": ["b"]}])
    _, plain = s.observe_sequence(observations=[{"strings": ["a"]}, {"strings": ["b"]}])
    return [[r["stm_length"] for r in b["results"]] for b in (body, other, plain)]


SCENARIOS: dict[str, Callable[[Node], JSON]] = {f.__name__: f for f in (
    reobserve_stored, other_session_learn_indexes, float32_near_tie, ties_by_insertion, clear_stm_keeps_buffer,
    clear_all_drops_buffer, empty_stm_learn_does_not_flush, search_before_buffering, broadcasting_sum,
    dimension_mismatch_at_flush, dimension_fixed_by_first_flushed, empty_vector_fixes_dimension_zero,
    learn_after_each_flushes, learn_at_end_flushes, auto_learn_flushes, reindex_overwrites_keeps_position,
    duplicates_in_buffer, one_dimensional_space, observe_sequence_stm_length)}



class HttpSession:
    """A session of a node over KATO's HTTP API (the service, or real KATO when recording)."""

    def __init__(self, base_url: str, node_id: str, config: dict[str, JSON] | None = None) -> None:
        import requests

        self.http = requests.Session()
        body: dict[str, JSON] = {"node_id": node_id, **({"config": config} if config else {})}
        response = self.http.post(f"{base_url}/sessions", json=body)
        response.raise_for_status()
        self.base = f"{base_url}/sessions/{response.json()['session_id']}"

    def _post(self, path: str, body: JSON = None) -> tuple[int, JSON]:
        response = self.http.post(self.base + path, json=body)
        is_json = response.headers.get("content-type", "").startswith("application/json")
        return response.status_code, response.json() if is_json else response.text  # KATO's 500s are text

    def observe(self, **body: JSON) -> tuple[int, JSON]:
        return self._post("/observe", body)

    def observe_sequence(self, **body: JSON) -> tuple[int, JSON]:
        return self._post("/observe-sequence", body)

    def learn(self) -> tuple[int, JSON]:
        return self._post("/learn")

    def stm(self) -> list[list[str]]:
        return self.http.get(self.base + "/stm").json()["stm"]

    def clear_stm(self) -> None:
        assert self._post("/clear-stm")[0] == 200

    def clear_all(self) -> None:
        assert self._post("/clear-all")[0] == 200

    def update_config(self, config: dict[str, JSON]) -> None:
        assert self._post("/config", {"config": config})[0] == 200


def http_node(base_url: str, node_id: str) -> Node:
    return lambda config=None: HttpSession(base_url, node_id, config)


EXPECTED: dict[str, JSON] = {  # real KATO 3.10.1, except broadcasting_sum's 400: KATO answers 500 (spec §5.1)
    "reobserve_stored": ["PTRN|44b9ac25bcd0982d1cce14d559b4322ba36c201a", [[V1000, V0010, V0100]],
     [[V1000, V0010, "VCTR|7a69df4e038de5018592b06bb1b344cdefd610d0", V0100]], [[V10]], [[V_EMPTY]]],
    "other_session_learn_indexes": ["", [[V1000], [V1000, V0100]]],
    "float32_near_tie": [["VCTR|8e9ca171f1943286c27714fa0e3d55c6f89b1392", V01,
      "VCTR|e45843a3f6ceaae79b02a48f04b7e637d8d7c70d",
      "VCTR|ed8dd6cfbe64dec176560571b14dd88a472be2ac"]],
    "ties_by_insertion": [[V1000, V0010, V0001, V0100]],
    "clear_stm_keeps_buffer": ["", [[V1000, V09]]],
    "clear_all_drops_buffer": ["", [[V09]]],
    "empty_stm_learn_does_not_flush": [400, [[V1000], [V09]]],
    "search_before_buffering": [[V1000], [V1000], [V09]],
    "broadcasting_sum": [[200, 200, 200, 400], [[V3333], [V3333], [V3333]],
      "PTRN|fc9615b09d5cf295f1359864e04fcd4c20682cd2",
     [[V3333, "VCTR|2a512038562988d06ce280319671d6b0e5aae599"]]],
    "dimension_mismatch_at_flush": ["PTRN|5025ac8a67260d55690f91bc2655c2b0c8daf5cb", [[V10]], [[V10], [V1000, V09]]],
    "dimension_fixed_by_first_flushed": ["PTRN|2596ecd01d3d70dbd6fbeece7569f2cf1385ee63", [[V1000]],
     [[V1000], [V10, "VCTR|e2bcd5c8682e6eb3ba9dd60af79c15b685e9b88b"]],
     [[V1000], [V10, "VCTR|e2bcd5c8682e6eb3ba9dd60af79c15b685e9b88b"],
      ["VCTR|835ce22f2737a4ab145c517dfddc90848c583adc", V10]]],
    "empty_vector_fixes_dimension_zero": ["PTRN|fa81d84377b38e0f3364b80075cc3510ed17642c", [[V09], [V_EMPTY]]],
    "learn_after_each_flushes": [["", "PTRN|05efec0df91c8948908d1a2200df68887e6dcc7b",
      "PTRN|e8e3bbbb44f7693b7f960e80f8ec70bce420390a"],
     [0, 0, 0], 0, [[V0010], [V1000, V0010, "VCTR|b57dcb64238493ad2477ee5f94e714d4885b925e", V09]]],
    "learn_at_end_flushes": [["VCTR|2f706486c2f8784036e6dd39181f219a399d3f30", V1000, V09]],
    "auto_learn_flushes": [None, [["VCTR|2f706486c2f8784036e6dd39181f219a399d3f30", V1000, V09]]],
    "reindex_overwrites_keeps_position": [[["VCTR|aa0e3a65663c19c7967549d71e1729b192c8d5d2",
      "VCTR|cc71dbab40839b974083e80eec02edc1abec5cbf"]],
     [["VCTR|6a524468f17560165a8b5e60e4f1260587800a3d", "VCTR|aa0e3a65663c19c7967549d71e1729b192c8d5d2",
       "VCTR|cc71dbab40839b974083e80eec02edc1abec5cbf"]]],
    "duplicates_in_buffer": [["VCTR|92fee23207d7d9a9be1cec5d325a41b48f2277c8", V10,
      "VCTR|d628de66772ddf5b01be9b71b5cbb2b9e55a551a"]],
    "one_dimensional_space": [["VCTR|1ef3bb8c133add0f16eafb72e7f2b3e320d50309",
      "VCTR|d507ca526c582543343f563073edb7d6937e19d7",
      "VCTR|fe5de4472f7e4d5c9cdd19cadebfa06fe3da8e43"],
     ["VCTR|1ef3bb8c133add0f16eafb72e7f2b3e320d50309", V_EMPTY, "VCTR|d507ca526c582543343f563073edb7d6937e19d7"]],
    "observe_sequence_stm_length": [[0], [0, 0], [1, 2]],
}
