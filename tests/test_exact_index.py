from consentry.index import ExactIndex


def test_exact_index_add_lookup_remove():
    idx = ExactIndex()
    a, b = "ab" * 16, "cd" * 16
    idx.add(a, 1)
    idx.add(a, 2)
    idx.add(b, 3)
    idx.add("not-hex-value", 4)  # PhotoDNA base64 and the like are kept as text
    assert idx.lookup(a) == {1, 2} and idx.lookup(b.upper()) == {3} and idx.lookup("not-hex-value") == {4}
    idx.remove_id(1)
    assert idx.lookup(a) == {2}
    idx.add(b, 2)  # an id moves to a new value
    assert idx.lookup(a) == set() and idx.lookup(b) == {2, 3}
    idx.remove_id(99)
    assert len(idx) == 3 and idx.lookup("ef" * 16) == set()
