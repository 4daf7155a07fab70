"""Random erasing (--random-erasing): the rectangles' statistics, the batch kernel against a
pixel-by-pixel reference on the CPU and NumPy backends, and seeded, resumable, shardable batches.
(CPU against CUDA: test_cuda_batch.py.)"""

import math

import numpy as np
import pytest

import numbacnn.kernels.cpu as cpu_kernels
import numbacnn.kernels.npy as npy_kernels
from numbacnn.data import DataLoader
from numbacnn.data.loader import erasing_rectangles

from helpers import erase_case, gather_case, gather_ref


def _sizes(rects):
    erased = rects[:, 1] > rects[:, 0]
    heights = (rects[:, 1] - rects[:, 0])[erased]
    widths = (rects[:, 3] - rects[:, 2])[erased]
    return erased, heights, widths


def test_erased_areas_and_ratios_follow_the_drawn_distributions():
    """Where every drawn size fits (areas up to 20%, ratios 0.5..2 of a 200 x 200 image), the
    areas are uniform and the log aspect ratios uniform: check the range, mean and quartiles."""
    rects = erasing_rectangles(np.random.default_rng(1), 20000, 200, 200, 0.5, area=(0.02, 0.2), ratio=(0.5, 2.0))
    erased, heights, widths = _sizes(rects)
    assert abs(erased.mean() - 0.5) < 0.015  # 0.5 +- 4 standard deviations
    share = heights * widths / 200**2
    assert share.min() > 0.02 * 0.97 and share.max() < 0.2 * 1.03  # rounding to whole pixels
    assert abs(share.mean() - 0.11) < 0.003
    np.testing.assert_allclose(np.quantile(share, [0.25, 0.75]), [0.065, 0.155], atol=0.004)
    log_ratio = np.log(heights / widths)
    assert log_ratio.min() > math.log(0.5) - 0.03 and log_ratio.max() < math.log(2.0) + 0.03
    assert abs(log_ratio.mean()) < 0.01 and abs((log_ratio > 0).mean() - 0.5) < 0.02
    # Placed uniformly: the top-left corners reach both ends of their ranges.
    assert rects[erased, 0].min() == 0 and (200 - rects[erased, 1]).min() == 0


def test_the_papers_setting_on_fashion_mnist_stays_inside_the_image():
    rects = erasing_rectangles(np.random.default_rng(2), 20000, 28, 28, 0.5)  # area 2-40 %, ratio 0.3-3.3
    erased, heights, widths = _sizes(rects)
    # A size that does not fit is drawn again: a few of the p = 0.5 draws give up after 10 tries.
    assert 0.47 < erased.mean() < 0.515
    assert (rects[erased, 0] >= 0).all() and (rects[erased, 1] <= 28).all()
    assert (rects[erased, 2] >= 0).all() and (rects[erased, 3] <= 28).all()
    assert (heights < 28).all() and (widths < 28).all() and (heights > 0).all() and (widths > 0).all()
    share = heights * widths / 28**2
    assert share.min() >= 0.02 * 0.6 and share.max() <= 0.4 * 1.2  # whole pixels on a small image
    assert 0.3 / 1.6 < (heights / widths).min() and (heights / widths).max() < 3.3 * 1.6
    # Exact sizes come out exactly: 25 % of the image as a square is 14 x 14.
    square = erasing_rectangles(np.random.default_rng(3), 50, 28, 28, 1.0, area=(0.25, 0.25), ratio=(1, 1))
    assert (square[:, 1] - square[:, 0] == 14).all() and (square[:, 3] - square[:, 2] == 14).all()


@pytest.mark.parametrize("backend", [cpu_kernels, npy_kernels], ids=["cpu", "npy"])
@pytest.mark.parametrize("pad", [0, 2])
def test_gather_batch_erases_as_the_reference_does(backend, pad, rng):
    case = gather_case(rng, pad)
    erase, seed = erase_case()
    expected, expected_labels = gather_ref(*case, erase, seed)
    out, out_labels = np.empty(expected.shape, np.float32), np.empty(4, np.int64)
    backend.gather_batch(out, out_labels, *case, erase, seed)
    np.testing.assert_allclose(out, expected, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(out_labels, expected_labels)
    plain, _ = gather_ref(*case)
    assert not np.allclose(out[2], plain[2]) and np.allclose(out[1], plain[1])  # erased / untouched


def test_the_cpu_and_numpy_backends_erase_bitwise_alike(rng):
    case = gather_case(rng, 1)
    erase, seed = erase_case()
    outs = []
    for backend in (cpu_kernels, npy_kernels):
        out = np.empty((4, 2, 6, 5), np.float32)
        backend.gather_batch(out, np.empty(4, np.int64), *case, erase, seed)
        outs.append(out)
    np.testing.assert_array_equal(outs[0], outs[1])


def _loader(seed=0, **kwargs):
    images = np.random.default_rng(7).integers(0, 256, (40, 1, 12, 12)).astype(np.uint8)
    labels = np.arange(40) % 4
    options = dict(batch_size=8, shuffle=True, augment=True, pad=2, seed=seed, erasing=(0.5, (0.02, 0.4), (0.3, 3.3)))
    return DataLoader(images, labels, **dict(options, **kwargs))


def _epoch(loader, epoch, start=0):
    return [(x.copy(), y.copy()) for x, y in loader.epoch(epoch, start)]


def test_identical_seeds_give_identical_batches_and_a_resumed_epoch_the_same_ones():
    first, again = _epoch(_loader(), 1), _epoch(_loader(), 1)
    for (x1, y1), (x2, y2) in zip(first, again):
        np.testing.assert_array_equal(x1, x2)
        np.testing.assert_array_equal(y1, y2)
    resumed = _epoch(_loader(), 1, start=3)
    for (x1, _), (x2, _) in zip(first[3:], resumed):
        np.testing.assert_array_equal(x1, x2)
    other_seed, other_epoch = _epoch(_loader(seed=1), 1), _epoch(_loader(), 2)
    assert not np.array_equal(first[0][0], other_seed[0][0]) and not np.array_equal(first[0][0], other_epoch[0][0])


def test_erasing_changes_only_its_rectangles():
    """The same loader without erasing gives the same crops and flips: the batches differ exactly
    inside the drawn rectangles, and about half the images are erased."""
    erased, plain = _epoch(_loader(), 0), _epoch(_loader(erasing=None), 0)
    changed_images, total = 0, 0
    for (xe, ye), (xp, yp) in zip(erased, plain):
        np.testing.assert_array_equal(ye, yp)
        differs = (xe != xp).any(axis=1)  # (B, H, W)
        for plane in differs:
            total += 1
            if plane.any():
                changed_images += 1
                rows, cols = np.nonzero(plane.any(axis=1))[0], np.nonzero(plane.any(axis=0))[0]
                assert plane[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1].mean() > 0.9  # a rectangle
    assert 0.2 < changed_images / total < 0.8


def test_the_ranks_share_one_draw():
    """Two ranks' halves of each global batch are the single loader's batch, erasing included."""
    whole = _epoch(_loader(batch_size=16), 1)
    ranks = [_epoch(_loader(rank=r, world_size=2), 1) for r in (0, 1)]
    assert len(whole) == len(ranks[0]) == 3
    for b, (x, _) in enumerate(whole):
        np.testing.assert_array_equal(ranks[0][b][0], x[0::2])
        np.testing.assert_array_equal(ranks[1][b][0], x[1::2])
