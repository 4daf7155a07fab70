"""Seeded initialisers (numpy on the host; layers copy the result to their device).

All randomness in numbacnn (weights, dropout seeds, data shuffling defaults) draws from one
generator set by :func:`manual_seed`, so the same seed gives the same model and the same run.
"""

import math

import numpy as np

_generator = np.random.default_rng(0)
# Initialisers draw float64 values (the generator's native precision, so a seed gives the same
# weights in float32 and float64) this many at a time into the output array: a large layer never
# holds a float64 copy of itself.
CHUNK = 1 << 20


def manual_seed(seed):
    """Reseed the global generator used by every initialiser and dropout layer (seed >= 0)."""
    global _generator
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"manual_seed: the seed must be an integer >= 0, got {seed!r}")
    _generator = np.random.default_rng(int(seed))
    return _generator


def _draw(shape, dtype, draw):
    """An array of ``shape`` filled by ``draw(n)`` (float64 values) in chunks of CHUNK."""
    out = np.empty(shape, dtype=dtype)
    flat = out.reshape(-1)
    for start in range(0, flat.size, CHUNK):
        stop = min(start + CHUNK, flat.size)
        flat[start:stop] = draw(stop - start)
    return out


def generator():
    return _generator


def fan_in_and_fan_out(shape):
    """(fan_in, fan_out) of a weight (out, in, *kernel) as PyTorch defines them."""
    if len(shape) < 2:
        raise ValueError(f"fan in/out need a weight of rank >= 2, got shape {tuple(shape)}")
    receptive = int(np.prod(shape[2:])) if len(shape) > 2 else 1
    return shape[1] * receptive, shape[0] * receptive


def kaiming_uniform(shape, a=math.sqrt(5.0), mode="fan_in", dtype=np.float32, rng=None):
    """U(-b, b) with b = gain * sqrt(3 / fan), gain = sqrt(2 / (1 + a^2)).

    The default a = sqrt(5) is PyTorch's default for Conv2d and Linear weights.
    """
    fan_in, fan_out = fan_in_and_fan_out(shape)
    fan = fan_in if mode == "fan_in" else fan_out
    bound = math.sqrt(2.0 / (1.0 + a * a)) * math.sqrt(3.0 / fan)
    return uniform(shape, bound, dtype, rng)


def kaiming_normal(shape, mode="fan_out", nonlinearity_gain=math.sqrt(2.0), dtype=np.float32, rng=None):
    """N(0, (gain / sqrt(fan))^2): the usual ResNet convolution initialiser (fan_out, ReLU)."""
    fan_in, fan_out = fan_in_and_fan_out(shape)
    fan = fan_in if mode == "fan_in" else fan_out
    rng = rng or _generator
    std = nonlinearity_gain / math.sqrt(fan)
    return _draw(shape, dtype, lambda n: rng.standard_normal(n) * std)


def xavier_uniform(shape, gain=1.0, dtype=np.float32, rng=None):
    fan_in, fan_out = fan_in_and_fan_out(shape)
    return uniform(shape, gain * math.sqrt(6.0 / (fan_in + fan_out)), dtype, rng)


def uniform(shape, bound, dtype=np.float32, rng=None):
    rng = rng or _generator
    return _draw(shape, dtype, lambda n: rng.uniform(-bound, bound, size=n))


def constant(shape, value, dtype=np.float32):
    return np.full(shape, value, dtype=dtype)


def bias_uniform(shape, fan_in, dtype=np.float32, rng=None):
    """PyTorch's default bias: U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
    bound = 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0
    return uniform(shape, bound, dtype, rng)
