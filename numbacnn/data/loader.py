"""Batches: seeded shuffling, normalisation and augmentation fused into one gather kernel.

Iterating never copies the data set: each batch is gathered from the uint8 images straight into
one reused float32 buffer, normalised ((v/255 - mean) / std), optionally randomly cropped (with
zero padding) and flipped, and randomly erased (Zhong et al. 2020: a rectangle of random pixels).
Every random choice derives from (seed, epoch, batch), so an epoch can be resumed at any batch and
reproduce the same data.
"""

import math

import numpy as np

from ..runtime.device import CPU


def erasing_rectangles(rng, count, height, width, p, area=(0.02, 0.4), ratio=(0.3, 3.3), attempts=10):
    """(count, 4) rows (y0, y1, x0, x1) of random erasing (Zhong et al. 2020, as timm draws it): with
    probability ``p`` a rectangle covering a fraction of the image uniform in ``area``, its aspect
    ratio h / w log-uniform in ``ratio``, placed uniformly; a size that does not fit is drawn again
    (up to ``attempts`` times). Rows (0, 0, 0, 0) erase nothing."""
    rects = np.zeros((count, 4), np.int64)
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for b in range(count):
        if rng.random() >= p:
            continue
        for _ in range(attempts):
            target = rng.uniform(*area) * height * width
            aspect = math.exp(rng.uniform(*log_ratio))
            h, w = int(round(math.sqrt(target * aspect))), int(round(math.sqrt(target / aspect)))
            if 0 < h < height and 0 < w < width:
                y0, x0 = int(rng.integers(0, height - h + 1)), int(rng.integers(0, width - w + 1))
                rects[b] = (y0, y0 + h, x0, x0 + w)
                break
    return rects


class DataLoader:
    """Batches of (x float32 (B, C, H, W), y int64 (B,)) over uint8 images (N, C, H, W).

    The arrays yielded are reused buffers, overwritten by the next batch.

    Sharded for data-parallel training (``rank`` of ``world_size`` processes): every rank walks
    the same order in global batches of ``world_size * batch_size`` images and takes the
    interleaved share ``global_batch[rank::world_size]`` (as PyTorch's DistributedSampler), with
    the augmentation drawn for the global batch. So the ranks' batches together are exactly the
    batch one process with ``world_size * batch_size`` would see. A final global batch with fewer
    images than ranks is dropped, so that no rank is ever handed an empty batch.
    """

    def __init__(
        self,
        images,
        labels,
        batch_size=64,
        shuffle=True,
        seed=0,
        mean=(0.0,),
        std=(1.0,),
        augment=False,
        pad=4,
        drop_last=False,
        rank=0,
        world_size=1,
        erasing=None,
    ):
        if images.dtype != np.uint8 or images.ndim != 4:
            raise TypeError(
                f"DataLoader: expected uint8 images of shape (N, C, H, W), got {images.dtype} {images.shape}"
            )
        if len(images) != len(labels):
            raise ValueError(f"DataLoader: {len(images)} images but {len(labels)} labels")
        if batch_size < 1:
            raise ValueError(f"DataLoader: batch_size must be >= 1, got {batch_size}")
        if not 0 <= rank < world_size:
            raise ValueError(f"DataLoader: rank must lie in [0, world_size), got rank {rank} of {world_size}")
        self.rank, self.world_size = int(rank), int(world_size)
        self.images = np.ascontiguousarray(images)
        self.labels = np.ascontiguousarray(labels, dtype=np.int64)
        self.batch_size, self.shuffle, self.seed = int(batch_size), bool(shuffle), int(seed)
        self.augment, self.pad, self.drop_last = bool(augment), int(pad) if augment else 0, bool(drop_last)
        channels = images.shape[1]
        mean = np.broadcast_to(np.asarray(mean, np.float32), (channels,))
        std = np.broadcast_to(np.asarray(std, np.float32), (channels,))
        self.scale = (1.0 / (255.0 * std)).astype(np.float32)
        self.shift = (-mean / std).astype(np.float32)
        # Random erasing: None, or (p, (area low, high), (ratio low, high)).
        self.erasing = erasing if erasing and erasing[0] > 0 else None
        self._buffers = {}

    @property
    def num_samples(self):
        return len(self.images)

    @property
    def global_batch_size(self):
        return self.batch_size * self.world_size

    def __len__(self):
        n, size = len(self.images), self.global_batch_size
        if self.drop_last or n % size < self.world_size:
            return n // size
        return -(-n // size)

    def order(self, epoch):
        if not self.shuffle:
            return np.arange(len(self.images))
        return np.random.default_rng([self.seed, epoch]).permutation(len(self.images))

    def _buffer(self, size):
        if size not in self._buffers:
            shape = (size,) + self.images.shape[1:]
            self._buffers[size] = (np.empty(shape, np.float32), np.empty(size, np.int64))
        return self._buffers[size]

    def epoch(self, epoch=0, start_batch=0):
        """Yield the batches of ``epoch`` from batch index ``start_batch`` on."""
        order, size = self.order(epoch), self.global_batch_size
        share = slice(self.rank, None, self.world_size)
        for b in range(start_batch, len(self)):
            idx = order[b * size : (b + 1) * size]
            erase, erase_seed = self._erasing(epoch, b, len(idx), share)
            if self.augment:
                rng = np.random.default_rng([self.seed, epoch, b, 1])
                offsets = rng.integers(0, 2 * self.pad + 1, size=(len(idx), 2))[share]
                flips = rng.integers(0, 2, size=len(idx)).astype(np.bool_)[share]
            idx = idx[share]
            if not self.augment:
                offsets = np.full((len(idx), 2), 0, np.int64)
                flips = np.zeros(len(idx), np.bool_)
            x, y = self._buffer(len(idx))
            CPU.ops.gather_batch(
                x, y, self.images, self.labels, idx, self.scale, self.shift, offsets, flips, self.pad, erase, erase_seed
            )
            yield x, y

    def _erasing(self, epoch, b, count, share):
        """(erase (B, 5) rows (y0, y1, x0, x1, position in the global batch) or None, seed) of batch
        b, whose global batch holds ``count`` images: drawn for the global batch, as crops and
        flips are, so that the ranks take their share of one draw."""
        if self.erasing is None:
            return None, 0
        rng = np.random.default_rng([self.seed, epoch, b, 2])
        seed = int(rng.integers(0, 2**62))
        p, area, ratio = self.erasing
        height, width = self.images.shape[2], self.images.shape[3]
        rects = erasing_rectangles(rng, count, height, width, p, area, ratio)
        erase = np.concatenate([rects, np.arange(count)[:, None]], axis=1)
        return np.ascontiguousarray(erase[share]), seed

    def __iter__(self):
        return self.epoch(0)
