"""kernels/cuda/batch.py against the reference: gather_batch (normalisation, crops, flips, random
erasing)."""

import numpy as np
import pytest

import numbacnn.kernels.cpu as cpu_kernels
import numbacnn.kernels.cuda as cuda_kernels

from cuda_parity import host, needs_cuda
from helpers import erase_case, gather_case, gather_ref

pytestmark = needs_cuda


def test_gather_batch_parity(rng, cuda):
    images, labels, indices, scale, shift, offsets, flips, pad = gather_case(rng, 2)
    expected, expected_labels = gather_ref(images, labels, indices, scale, shift, offsets, flips, pad)
    out, out_labels = cuda.empty(expected.shape, np.float32), cuda.empty(len(indices), np.int64)
    arrays = [cuda.asarray(a) for a in (images, labels, indices, scale, shift, offsets, flips)]
    cuda_kernels.gather_batch(out, out_labels, *arrays, pad)
    np.testing.assert_allclose(host(out), expected, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(host(out_labels), expected_labels)


# The simulator runs the hash on NumPy scalars, which warn where uint64 arithmetic wraps (on purpose).
@pytest.mark.filterwarnings("ignore:overflow encountered")
def test_gather_batch_with_random_erasing_parity(rng, cuda):
    """The rectangles' random pixels come from one hash of (seed, pixel index): CUDA draws what the
    CPU draws."""
    images, labels, indices, scale, shift, offsets, flips, pad = gather_case(rng, 1)
    erase, seed = erase_case()
    expected = np.empty((4, 2, 6, 5), np.float32)
    cpu_kernels.gather_batch(expected, np.empty(4, np.int64), images, labels, indices, scale, shift, offsets, flips,
                             pad, erase, seed)  # fmt: skip
    out, out_labels = cuda.empty(expected.shape, np.float32), cuda.empty(len(indices), np.int64)
    arrays = [cuda.asarray(a) for a in (images, labels, indices, scale, shift, offsets, flips)]
    cuda_kernels.gather_batch(out, out_labels, *arrays, pad, cuda.asarray(erase), seed)
    np.testing.assert_allclose(host(out), expected, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(host(out), gather_ref(images, labels, indices, scale, shift, offsets, flips, pad,
                                                     erase, seed)[0], rtol=1e-6, atol=1e-6)  # fmt: skip
