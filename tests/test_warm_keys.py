"""Quick start's keys (numbacnn/runtime/warm_keys.py): a key per compiled specialisation of a
kernel, and the file of those the JIT cache holds, kept per source fingerprint."""

import numpy as np

from numbacnn.runtime import warm_keys


def test_keys_follow_what_numba_specialises_on():
    a = np.zeros((2, 3), np.float32)
    key, _ = warm_keys.signature_key("t", (a, 0.1, 3, (1, 1)))
    assert warm_keys.signature_key("t", (np.ones((2, 3), np.float32), 0.5, 3, (1, 1)))[0] == key  # a float
    assert warm_keys.signature_key("t", (a, 0.1, 7, (1, 1)))[0] != key  # an integer hyper-parameter
    assert warm_keys.signature_key("t", (a, 0.1, 3, (2, 2)))[0] != key  # a pair of them
    assert warm_keys.signature_key("t", (a.astype(np.float64), 0.1, 3, (1, 1)))[0] != key  # dtype
    assert warm_keys.signature_key("t", (a.T, 0.1, 3, (1, 1)))[0] != key  # layout
    assert warm_keys.signature_key("t", (np.zeros((2, 4), np.float32), 0.1, 3, (1, 1)))[0] != key  # shape
    # The batch up to FULL_BATCH (the convolution table takes other kernels below 2 LANES samples):
    assert warm_keys.signature_key("t", (np.zeros((5, 3), np.float32), 0.1, 3, (1, 1)))[0] != key
    full = warm_keys.FULL_BATCH
    full_key = warm_keys.signature_key("t", (np.zeros((full, 3), np.float32), 0.1, 3, (1, 1)))[0]
    assert warm_keys.signature_key("t", (np.zeros((5 * full, 3), np.float32), 0.1, 3, (1, 1)))[0] == full_key
    assert warm_keys.signature_key("t", (a, np.float32(0.1), 3, (1, 1)))[0] != key  # scalar type
    assert warm_keys.signature_key("t", (a, 0.1, 3, None))[0] != key  # an optional argument
    # A seed or a step count is new at every call and chooses no code: keyed by type.
    names = ("x", "p", "seed", "size")
    assert (
        warm_keys.signature_key("t", (a, 0.1, 3, (1, 1)), names=names)[0]
        == (warm_keys.signature_key("t", (a, 0.1, 12345, (1, 1)), names=names)[0])
    )


def test_an_edit_or_upgrade_starts_a_new_warm_keys_file(monkeypatch):
    """The record of compiled signatures is kept per kernel-source fingerprint and numba version,
    as the cache itself is (jit_cache.py): after an edit nothing counts as warm until compiled."""
    from numbacnn.runtime import jit_cache

    before = warm_keys.warm_keys_path()
    monkeypatch.setattr(jit_cache, "fingerprint", lambda *args: "0123456789abcdef")
    assert warm_keys.warm_keys_path() != before
    assert "0123456789abcdef" in warm_keys.warm_keys_path()


def test_the_file_is_read_again_only_when_it_changes(tmp_path):
    path = str(tmp_path / "keys.json")
    keys = warm_keys.WarmKeys(path)
    assert keys.current() == set()
    warm_keys.add_warm_keys(path, [("a", 1)])
    assert keys.current() == {("a", 1)}
    first = keys.current()
    assert keys.current() is first  # unchanged: not parsed again
    warm_keys.add_warm_keys(path, [("b", (2, 3))])
    assert keys.current() == {("a", 1), ("b", (2, 3))}
