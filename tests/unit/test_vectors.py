"""Vectors (spec §5) in the reference KATO: the scenarios real KATO 3.10.1 answered (``vector_scenarios``), the
vector space's arithmetic, and the observation's sum and name."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pytest
from pydantic import ValidationError

from schema.errors import BadRequest, VectorLengthError
from schema.naming import vector_name, vector_sum
from schema.rules.reference_kato import ReferenceKato, ReferenceSession
from schema.rules.vectors import VectorSpace, flush
from tests.unit import vector_scenarios as vs

_nodes = itertools.count()


class ReferenceNodeSession:
    """``vector_scenarios.Session`` over the in-process reference KATO (errors as HTTP status codes)."""

    def __init__(self, session: ReferenceSession) -> None:
        self.s = session

    @staticmethod
    def _call(fn, *args: Any, **kwargs: Any) -> tuple[int, Any]:
        try:
            return 200, fn(*args, **kwargs)
        except BadRequest as error:
            return 400, error.body()
        except ValidationError as error:
            return 422, {"detail": error.errors()}

    def observe(self, **body: Any) -> tuple[int, Any]:
        return self._call(self.s.observe, **body)

    def observe_sequence(self, **body: Any) -> tuple[int, Any]:
        return self._call(self.s.observe_sequence, **body)

    def learn(self) -> tuple[int, Any]:
        status, name = self._call(self.s.learn)
        return (status, {"pattern_name": name}) if status == 200 else (status, name)

    def stm(self) -> list[list[str]]:
        return [list(e) for e in self.s.state.stm]

    def clear_stm(self) -> None:
        self.s.clear_stm()

    def clear_all(self) -> None:
        self.s.clear_all()

    def update_config(self, config: dict[str, Any]) -> None:
        self.s.update_config(config)


def reference_node(kato: ReferenceKato | None = None) -> vs.Node:
    kato = kato or ReferenceKato()
    node_id = f"vector_node_{next(_nodes)}"
    return lambda config=None: ReferenceNodeSession(kato.session(node_id, config))


@pytest.mark.parametrize("scenario", sorted(vs.SCENARIOS))
def test_reference_answers_as_kato(scenario):
    assert vs.SCENARIOS[scenario](reference_node()) == vs.EXPECTED[scenario]


def test_names_of_the_spec():
    assert vector_name([[1.0, 2.0, 3.0]]) == "VCTR|fe5de4472f7e4d5c9cdd19cadebfa06fe3da8e43"
    assert vector_name([[0.1, 0.2, 0.3]]) == "VCTR|e09ff768f2b2a0f5d5e78932dc977709e8c35f57"
    assert vector_name([[1] * 12, [2]]) == vector_name([[3.0] * 12])
    assert vector_name([[2], [1, 1, 1, 1]]) == vector_name([[3, 3, 3, 3]]) == vs.V3333
    for name, vector in ((vs.V1000, [1, 0, 0, 0]), (vs.V0100, [0, 1, 0, 0]), (vs.V0010, [0, 0, 1, 0]),
                         (vs.V0001, [0, 0, 0, 1]), (vs.V09, [0.9, 0, 0, 0]), (vs.V01, [0.1, 0, 0, 0]),
                         (vs.V10, [1, 0]), (vs.V_EMPTY, [])):
        assert vector_name([vector]) == name


def test_the_sum_is_a_left_fold_in_float64():
    assert vector_sum([[0.1], [0.2], [0.3]]).tolist() == [(0.1 + 0.2) + 0.3] == [0.6000000000000001]
    assert vector_sum([[1, 2, 3], [1]]).dtype == np.float64 and vector_sum([[1, 2, 3], [1]]).tolist() == [2, 3, 4]
    assert vector_sum([[1e308], [1e308]]).tolist() == [float("inf")]  # KATO's numpy overflows the same way
    for bad in ([[1, 2], [1, 2, 3]], [[1, 2], [1], [1, 2, 3]], [[], [1, 2]]):
        with pytest.raises(VectorLengthError, match="same length"):
            vector_sum(bad)


def test_a_bad_sum_changes_nothing():
    session = reference_node()()
    assert session.observe(vectors=[[1, 2], [1, 2, 3]])[0] == 400
    assert session.observe_sequence(observations=[{"strings": ["a"]}, {"vectors": [[1], [1, 2], [1, 2, 3]]}])[0] == 400
    assert session.stm() == [] and session.s.state.time == 0
    assert session.s.kato.backend.pending_vectors == {}


def test_space_is_float32_and_searches_in_float64():
    space = VectorSpace()
    flush(space, [("a", [0.1, 0, 0, 0]), ("b", [0.3, 0, 0, 0])])
    assert space.points.dtype == np.float32
    assert space.points[:, 0].tolist() == [float(np.float32(0.1)), float(np.float32(0.3))]
    assert space.nearest([0.2, 0, 0, 0], 1) == ["a"]  # 0.2 - 0.10000000149 < 0.30000001192 - 0.2
    exact = VectorSpace()
    exact.upsert("b", [0.3, 0, 0, 0])
    exact.upsert("a", [0.1, 0, 0, 0])
    assert exact.nearest([0.2, 0, 0, 0]) == ["a", "b"]  # not an insertion-order accident


def test_near_tie_that_float32_makes_exact():
    """Two sums that differ beyond float32 precision are the same point: a tie, broken by position."""
    space = VectorSpace()
    flush(space, [("first", [1.0, 0]), ("second", [1.0 + 1e-12, 0]), ("far", [5.0, 0])])
    assert space.points[0].tolist() == space.points[1].tolist()
    assert space.nearest([1.0 + 1e-12, 0], 2) == ["first", "second"]
    assert space.nearest([1.0 - 1e-12, 0], 2) == ["first", "second"]


def test_reindexing_overwrites_and_keeps_the_position():
    space = VectorSpace()
    written = flush(space, [("a", [0, 0]), ("b", [1, 0]), ("a", [2, 0]), ("c", [1, 0])])
    assert space.names == ["a", "b", "c"] and space.points.tolist() == [[2, 0], [1, 0], [1, 0]]
    assert [(w.name, w.position, w.vector.tolist()) for w in written] == [("a", 0, [2, 0]), ("b", 1, [1, 0]),
                                                                          ("c", 2, [1, 0])]
    assert space.nearest([1, 0], 3) == ["b", "c", "a"]  # b and c tie at 0: b was inserted first


def test_first_flushed_vector_fixes_the_dimension():
    space = VectorSpace()
    assert flush(space, [("short", [1, 0]), ("long", [1, 0, 0]), ("other", [0, 1])])[-1].name == "other"
    assert space.names == ["short", "other"] and space.dim == 2
    assert space.nearest([1, 0, 0]) == []  # does not broadcast: nothing, as KATO's swallowed error
    assert space.nearest([0.5]) == ["short", "other"]  # a length-1 query broadcasts
    assert VectorSpace().nearest([1, 0]) == []


def test_restore_keeps_the_order_of_positions():
    space = VectorSpace()
    flush(space, [("x", [3, 0]), ("y", [1, 0]), ("z", [2, 0])])
    again = VectorSpace()
    again.restore(reversed([s for s in flush(VectorSpace(), [("x", [3, 0]), ("y", [1, 0]), ("z", [2, 0])])]))
    assert again.names == space.names == ["x", "y", "z"]
    assert again.nearest([2, 0]) == space.nearest([2, 0]) == ["z", "x", "y"]
