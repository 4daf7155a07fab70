"""direct_positions (kernels/cpu/conv/direct_positions.py: stride 1, vectorised over positions),
called directly on every geometry of the shared list it accepts (not only those the table sends
it): forward, input, weight and bias gradients against independent float64 references, in float32
and float64; skipped gradients; results independent of the thread count."""

import numpy as np
import pytest

from conv_cases import accepted, case_id, check_against_references, check_skipped_gradients, run_all_passes
from helpers import FLOAT_TOLERANCES, at_all_threads_and_one

NAME = "direct_positions"


@pytest.mark.parametrize("case", accepted(NAME), ids=case_id)
@pytest.mark.parametrize("dtype, tol", FLOAT_TOLERANCES)
def test_every_pass_matches_the_float64_references(case, dtype, tol, rng):
    check_against_references(NAME, case, dtype, tol, rng)


def test_it_takes_the_stride_one_layers_of_the_list():
    assert len(accepted(NAME)) >= 10  # every kernel size and padding of the list's first block


def test_skipped_gradients_are_not_computed(rng):
    check_skipped_gradients(NAME, accepted(NAME)[0], rng)


def test_results_do_not_depend_on_the_thread_count(rng):
    run = run_all_passes(NAME, (9, 6, 10, 12, 12, (3, 3), (1, 1), (1, 1), (1, 1), 1), rng)
    for many, one in zip(*at_all_threads_and_one(run)):
        np.testing.assert_array_equal(many, one)
