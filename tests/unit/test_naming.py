import hashlib

import pytest

from schema.naming import bare_pattern_hash, kb_id_for, pattern_hash, pattern_name, vector_name


@pytest.mark.parametrize(("events", "expected"), [
    ([["hello"], ["world"]], "7d0678ba6305341ce0d25133ab086208656a562f"),
    ([["a", "b"], ["c"]], "e9e43f2309079f2843665ab773996d99489306d6"),
    ([["hello"], ["world"], ["test"]], "386fbb12926e8e015a1483990df913e8410f94ce"),
])
def test_verified_pattern_hashes(events, expected):
    assert pattern_hash(events) == expected
    assert pattern_name(events) == "PTRN|" + expected


def test_pattern_name_depends_on_boundaries_and_order():
    names = {pattern_hash(e) for e in ([["a"], ["b"]], [["b"], ["a"]], [["a", "b"]], [["A"], ["b"]])}
    assert len(names) == 4


def test_pattern_hash_uses_python_repr_for_quotes_and_unicode():
    events = [["it's", 'say "hi"'], ["naïve", "\\"]]
    assert pattern_hash(events) == hashlib.sha1(str(events).encode("utf-8")).hexdigest()


def test_bare_hash_strips_prefix_only_once():
    assert bare_pattern_hash("PTRN|abc") == "abc"
    assert bare_pattern_hash("abc") == "abc"


@pytest.mark.parametrize(("vectors", "expected"), [
    ([[1.0, 2.0, 3.0]], "VCTR|fe5de4472f7e4d5c9cdd19cadebfa06fe3da8e43"),
    ([[0.1, 0.2, 0.3]], "VCTR|e09ff768f2b2a0f5d5e78932dc977709e8c35f57"),
])
def test_verified_vector_names(vectors, expected):
    assert vector_name(vectors) == expected


def test_vectors_of_one_observation_are_summed():
    assert vector_name([[0.5, 1.0, 1.5], [0.5, 1.0, 1.5]]) == vector_name([[1.0, 2.0, 3.0]])


@pytest.mark.parametrize(("node", "kb"), [
    ("test_abc-1", "test_abc_1_kato"),
    ("a/b\\c.d\"e$f*g<h>i:j|k?l-m n", "a_b_c_d_e_f_g_h_i_j_k_l_m_n_kato"),
    ("default_node", "default_node_kato"),
])
def test_kb_id_replaces_unsafe_characters(node, kb):
    assert kb_id_for(node) == kb


def test_kb_id_truncation_is_bit_exact():
    node = "test_" + "x" * 70
    digest = hashlib.md5(node.encode()).hexdigest()[:8]
    expected = f"{node[:60 - 4 - 10]}_{digest}_kato"
    assert kb_id_for(node) == expected
    assert len(kb_id_for(node)) == 60


def test_kb_id_at_the_limit_is_not_truncated():
    node = "n" * (60 - len("_kato"))
    assert kb_id_for(node) == node + "_kato"
    assert kb_id_for(node + "n") != node + "n_kato"


def test_service_name_dashes_become_underscores():
    assert kb_id_for("node", "my-service") == "node_my_service"
