"""winograd (kernels/cpu/conv/winograd.py: F(2x2, 3x3), forward and input gradient, vectorised over
tiles), called directly on every geometry of the shared list it accepts, in float32 and float64;
its error against float64 within a small factor of the direct kernels'; and forced on a layer
(NUMBACNN_CONV=winograd), where the weight gradient still comes from the table."""

import numpy as np
import pytest

import numbacnn as nc
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
from helpers import FLOAT_TOLERANCES, at_all_threads_and_one, conv2d_ref, gradient_check

NAME = "winograd"
# Wider planes and channel counts than the shared list: tile rows past a vector, several tasks.
EXTRA = [
    (3, 20, 14, 30, 30, (3, 3), (1, 1), (1, 1), (1, 1), 1),
    (5, 33, 40, 7, 7, (3, 3), (1, 1), (1, 1), (1, 1), 1),
    (2, 8, 6, 17, 9, (3, 3), (1, 1), (2, 0), (1, 1), 1),
]


@pytest.mark.parametrize("case", accepted(NAME) + EXTRA, ids=case_id)
@pytest.mark.parametrize("dtype, tol", FLOAT_TOLERANCES)
def test_forward_and_input_gradient_match_the_float64_references(case, dtype, tol, rng):
    check_against_references(NAME, case, dtype, tol, rng)


def test_it_takes_the_stride_one_3x3_layers_of_the_list():
    assert len(accepted(NAME)) >= 3  # with EXTRA above, 6 geometries


def test_its_float32_error_is_within_a_small_factor_of_the_direct_kernels(rng):
    """F(2x2, 3x3)'s transforms add a few roundings: the forward's error against float64 stays
    within 4x direct_positions' on a ResNet-sized layer."""
    case = (8, 32, 32, 16, 16, (3, 3), (1, 1), (1, 1), (1, 1), 1)
    x, w, b = arrays(case, np.float32, rng)
    expected = conv2d_ref(x.astype(np.float64), w.astype(np.float64), b.astype(np.float64), padding=(1, 1))
    errors = {}
    for name in ("winograd", "direct_positions"):
        out = np.empty(expected.shape, np.float32)
        BY_NAME[name].forward(out, x, w, b, geometry(case))
        errors[name] = np.abs(out - expected).max()
    assert errors["winograd"] <= 4 * errors["direct_positions"], errors


def test_skipped_gradients_are_not_computed(rng):
    check_skipped_gradients(NAME, accepted(NAME)[0], rng)


def test_results_do_not_depend_on_the_thread_count(rng):
    run = run_all_passes(NAME, (9, 6, 10, 12, 12, (3, 3), (1, 1), (1, 1), (1, 1), 1), rng)
    for many, one in zip(*at_all_threads_and_one(run)):
        np.testing.assert_array_equal(many, one)


def test_forced_on_a_layer_it_trains_with_the_tables_weight_gradient(monkeypatch, rng):
    monkeypatch.setenv("NUMBACNN_CONV", NAME)
    layer = nc.layers.Conv2d(3, 4, 3, padding=1).to(np.float64)
    x = rng.standard_normal((2, 3, 7, 6))
    assert gradient_check(layer, x) > 0
    strided = nc.layers.Conv2d(3, 4, 3, stride=2, padding=1)
    with pytest.raises(ValueError, match="NUMBACNN_CONV=winograd cannot run .*stride"):
        strided(rng.standard_normal((2, 3, 7, 6)).astype(np.float32))
