"""direct_channels (kernels/cpu/conv/direct_channels.py: any stride, padding, dilation and groups,
vectorised over output channels), called directly on every geometry of the shared list (it accepts
them all): forward, input, weight and bias gradients against independent float64 references, in
float32 and float64; the input gradient's phases (direct_channels_plans.py); skipped gradients;
results independent of the thread count."""

import numpy as np
import pytest

from numbacnn.kernels.cpu.conv.direct_channels_plans import input_grad_plans

from conv_cases import GEOMETRIES, accepted, case_id, check_against_references, check_skipped_gradients, run_all_passes
from helpers import FLOAT_TOLERANCES, at_all_threads_and_one

NAME = "direct_channels"


@pytest.mark.parametrize("case", accepted(NAME), ids=case_id)
@pytest.mark.parametrize("dtype, tol", FLOAT_TOLERANCES)
def test_every_pass_matches_the_float64_references(case, dtype, tol, rng):
    check_against_references(NAME, case, dtype, tol, rng)


def test_it_takes_every_layer():
    assert accepted(NAME) == GEOMETRIES


def test_the_input_gradient_phases_cover_each_pixel_once():
    """A 3x3 stride-2 layer: 4 phases of dx with 2x2, 2x1, 1x2 and 1x1 taps, 9 taps in all, and
    every pixel of dx written by exactly one phase."""
    plans = input_grad_plans((4, 9, 10), (6, 4, 3, 3), (5, 5), (2, 2), (1, 1), (1, 1), 1)
    assert sorted(plan.taps for plan in plans) == [(1, 1), (1, 2), (2, 1), (2, 2)]
    targets = np.concatenate([plan.targets for plan in plans])
    np.testing.assert_array_equal(np.sort(targets), np.arange(90))


def test_skipped_gradients_are_not_computed(rng):
    check_skipped_gradients(NAME, GEOMETRIES[13], rng)  # strided, dilated and grouped


def test_results_do_not_depend_on_the_thread_count(rng):
    run = run_all_passes(NAME, (9, 6, 10, 13, 13, (3, 3), (2, 2), (1, 1), (1, 1), 2), rng)
    for many, one in zip(*at_all_threads_and_one(run)):
        np.testing.assert_array_equal(many, one)
