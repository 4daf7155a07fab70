"""direct_samples (kernels/cpu/conv/direct_samples.py: stride 1, vectorised over samples), called
directly on every geometry of the shared list it accepts (not only those the table sends it, so
batches of 1-3 samples too, in one part-filled block): forward, input, weight and bias gradients
against independent float64 references, in float32 and float64; skipped gradients; results
independent of the thread count; batches that are and are not a multiple of LANES."""

import numpy as np
import pytest

from numbacnn.kernels.cpu.simd import LANES

from conv_cases import accepted, case_id, check_against_references, check_skipped_gradients, run_all_passes
from helpers import FLOAT_TOLERANCES, at_all_threads_and_one

NAME = "direct_samples"


@pytest.mark.parametrize("case", accepted(NAME), ids=case_id)
@pytest.mark.parametrize("dtype, tol", FLOAT_TOLERANCES)
def test_every_pass_matches_the_float64_references(case, dtype, tol, rng):
    check_against_references(NAME, case, dtype, tol, rng)


@pytest.mark.parametrize("n_batch", [4 * LANES, 2 * LANES + 3])
def test_whole_and_part_filled_blocks_of_samples(n_batch, rng):
    """LeNet's conv2 shape with 6 output channels in the input gradient (tiles of 2) and 16 in the
    forward (tiles of 4), at a batch of whole blocks (two per worker: the second finds the zeros
    the first wrote) and one with a part-filled last block."""
    check_against_references(NAME, (n_batch, 6, 16, 14, 14, (5, 5), (1, 1), (0, 0), (1, 1), 1), np.float32, 1e-5, rng)


@pytest.mark.parametrize("dtype, tol", FLOAT_TOLERANCES)
def test_samples_a_power_of_two_apart(dtype, tol, rng):
    """Planes of 2 x 16 x 16 pixels: samples lie 2 KiB (float32) or 4 KiB apart in x, dy and dx,
    so every copy in or out of a block takes the path through a row of each sample."""
    check_against_references(NAME, (2 * LANES, 2, 2, 16, 16, (3, 3), (1, 1), (1, 1), (1, 1), 1), dtype, tol, rng)


def test_it_takes_the_stride_one_layers_of_the_list():
    assert len(accepted(NAME)) >= 10  # every kernel size and padding of the list's first block


def test_skipped_gradients_are_not_computed(rng):
    check_skipped_gradients(NAME, accepted(NAME)[0], rng)


def test_results_do_not_depend_on_the_thread_count(rng):
    run = run_all_passes(NAME, (3 * LANES + 1, 6, 10, 12, 12, (3, 3), (1, 1), (1, 1), (1, 1), 1), rng)
    for many, one in zip(*at_all_threads_and_one(run)):
        np.testing.assert_array_equal(many, one)
