"""winograd4_channels (kernels/cpu/conv/winograd4_channels.py and winograd4_transforms.py: F(4x4,
3x3) vectorised over channels for the forward and input gradient, winograd_channels' F(2x2, 3x3)
weight gradient reading dy from its grid), called directly on geometries whose channel counts fill
blocks of 2 LANES at every width (multiples of 32), in float32 and float64: planes that do and do
not fill whole 4x4 tiles, every padding, tasks that end mid-sample; the error against float64
within a tested factor of the direct kernels'. The checks it shares with winograd_channels (the
weight gradient from the input gradient's grid, skipped gradients, the thread count, forced on a
layer) are test_conv_winograd_channels.py's, run on both entries."""

import numpy as np
import pytest

from numbacnn.kernels.cpu.conv import winograd4_transforms
from numbacnn.kernels.cpu.conv.dispatch import BY_NAME

from conv_cases import (
    accepted,
    arrays,
    case_id,
    check_against_references,
    geometry,
)
from helpers import FLOAT_TOLERANCES, conv2d_grads_ref, conv2d_ref

NAME = "winograd4_channels"
CASES = [
    (3, 32, 32, 7, 7, (3, 3), (1, 1), (1, 1), (1, 1), 1),  # ResNet-20's 7x7: a part-empty tile row
    (2, 32, 64, 8, 5, (3, 3), (1, 1), (0, 0), (1, 1), 1),  # no padding, a rectangle
    (2, 64, 32, 6, 9, (3, 3), (1, 1), (2, 2), (1, 1), 1),  # padding 2: the input gradient pads 0
    (5, 32, 32, 14, 13, (3, 3), (1, 1), (1, 2), (1, 1), 1),  # many tasks, one ending mid-sample
    (2, 32, 32, 16, 16, (3, 3), (1, 1), (1, 1), (1, 1), 1),  # whole tiles
]
# F(4x4, 3x3)'s transforms multiply by up to 8 and sum more terms than F(2x2, 3x3): in float32 its
# error is 4-6x the direct kernels' (test below), past the shared 1e-5 on these channel counts.
TOLERANCES = [FLOAT_TOLERANCES[0].values[:1] + (4e-5,), FLOAT_TOLERANCES[1].values]


def _matrices():
    bt = [[4, 0, -5, 0, 1, 0], [0, -4, -4, 1, 1, 0], [0, 4, -4, -1, 1, 0], [0, -2, -1, 2, 1, 0]]
    bt += [[0, 2, -1, -2, 1, 0], [0, 4, 0, -5, 0, 1]]
    at = [[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0], [0, 1, -1, 8, -8, 1]]
    return np.array(bt, float), np.array(at, float)


def test_the_transformed_weights_compute_the_correlation_with_the_papers_matrices(rng):
    """A' [(G g G') . (B' d B)] A is the 4x4 correlation of a 6x6 d with g, G from
    transformed_weight (plain and transposed-flipped)."""
    bt, at = _matrices()
    w = rng.standard_normal((3, 3, 3, 3))
    d = rng.standard_normal((6, 6))
    for transpose_flip, g in ((False, w[1, 2]), (True, w[2, 1, ::-1, ::-1])):
        u = np.array(winograd4_transforms.transformed_weight(w, 1, 2, transpose_flip)).reshape(6, 6)
        got = at @ (u * (bt @ d @ bt.T)) @ at.T
        want = [[(d[i : i + 3, j : j + 3] * g).sum() for j in range(4)] for i in range(4)]
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("case", accepted(NAME) + CASES, ids=case_id)
@pytest.mark.parametrize("dtype, tol", TOLERANCES, ids=["dtype_f32", "dtype_f64"])
def test_forward_and_input_gradient_match_the_float64_references(case, dtype, tol, rng):
    check_against_references(NAME, case, dtype, tol, rng)


def test_it_declines_what_winograd_channels_declines():
    assert "multiples of" in BY_NAME[NAME].accepts(geometry((2, 32, 36, 8, 8, (3, 3), (1, 1), (1, 1), (1, 1), 1)))
    assert "stride" in BY_NAME[NAME].accepts(geometry((2, 32, 32, 8, 8, (3, 3), (2, 2), (1, 1), (1, 1), 1)))


def test_its_float32_error_is_within_a_small_factor_of_the_direct_kernels(rng):
    """Each pass stays within 8x the direct kernel's error against float64 on ResNet-sized layers
    (measured 4-6x: benchmarks/NOTES.md, entry 60)."""
    for case in (
        (8, 32, 32, 14, 14, (3, 3), (1, 1), (1, 1), (1, 1), 1),
        (4, 64, 64, 8, 8, (3, 3), (1, 1), (1, 1), (1, 1), 1),
    ):
        x, w, b = arrays(case, np.float32, rng)
        w /= np.sqrt(9 * case[1])  # He-scaled weights, as in a trained network
        wide = [a.astype(np.float64) for a in (x, w, b)]
        expected = conv2d_ref(*wide, padding=(1, 1))
        dy = rng.standard_normal(expected.shape).astype(np.float32)
        dx_expected, _, _ = conv2d_grads_ref(dy.astype(np.float64), *wide[:2], (1, 1))
        errors = {}
        for name in (NAME, "direct_channels"):
            out, dx = np.empty(expected.shape, np.float32), np.empty_like(x)
            BY_NAME[name].forward(out, x, w, b, geometry(case))
            BY_NAME[name].backward(dx, None, None, dy, x, w, geometry(case))
            errors[name] = [np.sqrt(np.mean((got - want) ** 2)) for got, want in ((out, expected), (dx, dx_expected))]
        for passed, direct in zip(errors[NAME], errors["direct_channels"]):
            assert passed <= 8 * direct, errors
