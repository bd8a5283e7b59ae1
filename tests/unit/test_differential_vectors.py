"""The differential tool's model of KATO's vector index: it must see a tie at the 3-neighbour cut (stance Q16)."""

from __future__ import annotations

from tests.tools.kato_differential import VectorModel

STORED = [[0, 1, 1, -1], [0, 2, 1, 0], [-1, 1, 0, 2], [1, 0, -1, 0], [-0.6, -0.6, 0.1, 0.5]]


def indexed(points) -> VectorModel:
    model = VectorModel()
    for point in points:
        model.observe([point])
    model.flush()
    return model


def test_a_tie_between_the_third_and_fourth_nearest_is_seen():
    model = indexed(STORED)
    model.observe([[2, 0, 2, 2]])  # distances² 15, 13, 14, 14, 12.98: the 3rd and 4th tie at 14
    assert model.tie


def test_no_tie_at_the_cut_and_ties_inside_the_top_three_do_not_count():
    model = indexed(STORED)
    model.observe([[0, 2, 1, 0.5]])
    assert not model.tie
    inside = indexed([[1, 0], [-1, 0], [0, 5], [0, 7]])
    inside.observe([[0, 0]])  # 1, 1, 5, 7: the tie is within the three kept
    assert not inside.tie


def test_buffered_vectors_are_invisible_until_a_learn_and_another_length_is_dropped():
    model = indexed(STORED[:3])
    model.observe([[1, 0, -1, 0]])  # buffered: still 3 stored, no search can tie at the cut
    model.observe([[2, 0, 2, 2]])
    assert not model.tie and len(model.points) == 3
    model.observe([[1, 2]])
    model.flush()
    assert len(model.points) == 5  # the two of length 4 indexed, [1, 2] dropped
    model.observe([[2, 0, 2, 2]])
    assert model.tie  # now [-1,1,0,2] and [1,0,-1,0] tie for the 3rd place
