"""winograd_channels (kernels/cpu/conv/winograd_channels.py and its _weight_grad: F(2x2, 3x3)
vectorised over channels, all three passes), called directly on geometries whose channel counts
fill blocks of 2 LANES at every width (multiples of 32), in float32 and float64: odd and even
planes, every padding, several samples per task, tasks and chunks that end mid-sample; the weight
gradient alike whether dy comes from the input gradient's grid or its own; its error against
float64 within a small factor of the direct kernels'; results independent of the thread count; and
forced on a layer, checked by central differences. The checks that hold for any tile size run on
winograd4_channels too (ENTRIES), which shares this entry's set-up and weight gradient."""

import numpy as np
import pytest

import numbacnn as nc
from numbacnn.kernels.cpu.conv import winograd_channels
from numbacnn.kernels.cpu.conv.dispatch import BY_NAME

from conv_cases import (
    accepted,
    arrays,
    case_id,
    check_against_references,
    check_skipped_gradients,
    geometry,
    run_all_passes,
)
from helpers import FLOAT_TOLERANCES, at_all_threads_and_one, conv2d_grads_ref, conv2d_ref, gradient_check

NAME = "winograd_channels"
ENTRIES = [NAME, "winograd4_channels"]  # the Winograd entries over channels
CASES = [
    (3, 32, 32, 7, 7, (3, 3), (1, 1), (1, 1), (1, 1), 1),  # ResNet-20's odd planes
    (2, 32, 64, 8, 5, (3, 3), (1, 1), (0, 0), (1, 1), 1),  # no padding, a rectangle
    (2, 64, 32, 6, 9, (3, 3), (1, 1), (2, 2), (1, 1), 1),  # padding 2: the input gradient pads 0
    (5, 32, 32, 14, 13, (3, 3), (1, 1), (1, 2), (1, 1), 1),  # many tasks, one ending mid-sample
    (14, 32, 32, 10, 9, (3, 3), (1, 1), (1, 0), (1, 1), 1),  # 280 tiles: two weight-gradient chunks
]


@pytest.mark.parametrize("case", accepted(NAME) + CASES, ids=case_id)
@pytest.mark.parametrize("dtype, tol", FLOAT_TOLERANCES)
def test_forward_and_input_gradient_match_the_float64_references(case, dtype, tol, rng):
    check_against_references(NAME, case, dtype, tol, rng)


def test_it_declines_channel_counts_that_do_not_fill_its_blocks():
    assert "multiples of" in winograd_channels.accepts(geometry((2, 32, 36, 8, 8, (3, 3), (1, 1), (1, 1), (1, 1), 1)))
    assert "multiples of" in winograd_channels.accepts(geometry((2, 28, 32, 8, 8, (3, 3), (1, 1), (1, 1), (1, 1), 1)))
    assert "stride" in winograd_channels.accepts(geometry((2, 32, 32, 8, 8, (3, 3), (2, 2), (1, 1), (1, 1), 1)))


def test_its_float32_error_is_within_a_small_factor_of_the_direct_kernels(rng):
    """The transforms add a few roundings: each pass stays within 4x the direct kernel's error
    against float64 on a ResNet-sized layer."""
    case = (8, 64, 64, 8, 8, (3, 3), (1, 1), (1, 1), (1, 1), 1)
    x, w, b = arrays(case, np.float32, rng)
    wide = [a.astype(np.float64) for a in (x, w, b)]
    expected = conv2d_ref(*wide, padding=(1, 1))
    dy = rng.standard_normal(expected.shape).astype(np.float32)
    dx_expected, dw_expected, _ = conv2d_grads_ref(dy.astype(np.float64), *wide[:2], (1, 1))
    errors = {}
    for name in (NAME, "direct_channels"):
        out, dx, dw = np.empty(expected.shape, np.float32), np.empty_like(x), np.zeros_like(w)
        BY_NAME[name].forward(out, x, w, b, geometry(case))
        BY_NAME[name].backward(dx, dw, None, dy, x, w, geometry(case))
        errors[name] = [
            np.abs(got - want).max() for got, want in ((out, expected), (dx, dx_expected), (dw, dw_expected))
        ]
    for passed, direct in zip(errors[NAME], errors["direct_channels"]):
        assert passed <= 4 * direct, errors


@pytest.mark.parametrize("name", ENTRIES)
@pytest.mark.parametrize(
    "case",
    [
        CASES[0],
        CASES[2],
        (3, 32, 32, 9, 8, (3, 3), (1, 1), (0, 2), (1, 1), 1),
        (3, 32, 64, 9, 8, (3, 3), (1, 1), (2, 0), (1, 1), 1),
    ],
    ids=case_id,
)
def test_the_weight_gradient_is_the_same_from_the_input_gradients_grid(name, case, rng):
    """Each entry's grid of dy (2x2 or 4x4 tiles) holds every row and column the weight gradient's
    2x2 tiles read (zero past dy), at every padding."""
    x, w, _ = arrays(case, np.float32, rng)
    dy = rng.standard_normal(conv2d_ref(x, w, None, *case[6:]).shape).astype(np.float32)
    alone, shared = np.zeros_like(w), np.zeros_like(w)
    BY_NAME[name].backward(None, alone, None, dy, x, w, geometry(case))
    BY_NAME[name].backward(np.empty_like(x), shared, None, dy, x, w, geometry(case))
    np.testing.assert_array_equal(alone, shared)


@pytest.mark.parametrize("name", ENTRIES)
def test_skipped_gradients_are_not_computed(name, rng):
    check_skipped_gradients(name, CASES[0], rng)


@pytest.mark.parametrize("name", ENTRIES)
def test_results_do_not_depend_on_the_thread_count(name, rng):
    run = run_all_passes(name, (9, 32, 32, 10, 10, (3, 3), (1, 1), (1, 1), (1, 1), 1), rng)
    for many, one in zip(*at_all_threads_and_one(run)):
        np.testing.assert_array_equal(many, one)


@pytest.mark.parametrize("name", ENTRIES)
def test_forced_on_a_layer_its_gradients_match_central_differences(name, monkeypatch, rng):
    monkeypatch.setenv("NUMBACNN_CONV", name)
    layer = nc.layers.Conv2d(32, 32, 3, padding=1).to(np.float64)
    x = rng.standard_normal((2, 32, 5, 4))
    assert gradient_check(layer, x, max_checks=200) > 0
    narrow = nc.layers.Conv2d(3, 32, 3, padding=1)
    with pytest.raises(ValueError, match=f"NUMBACNN_CONV={name} cannot run .*multiples of"):
        narrow(rng.standard_normal((2, 3, 7, 6)).astype(np.float32))
