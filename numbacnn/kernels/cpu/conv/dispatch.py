"""2-D convolution on the CPU: the dispatch table, ``IMPLEMENTATIONS``.

Shapes: x (N, C, H, W), w (K, C/groups, KH, KW), b (K,) or None, out (N, K, OH, OW).

Each entry says whether it can run a layer (``accepts(geometry)``: None, or the reason it cannot)
and which passes it serves (forward, input gradient, weight gradient, or the bias gradient alone);
all run forward and backward on one signature. Each pass takes the first entry that can run it and
that no ordering rule (``RULES``: "should run", each with a name) sends on; when the two gradients
chose one entry, it computes both in one call (sharing what they share). ``NUMBACNN_CONV=<name>``
forces an entry for the passes it serves (an error says why when it cannot run the layer), and
``NUMBACNN_CONV=direct`` the table of the direct kernels that came before Winograd and
direct_samples (results identical to those versions'); ``NUMBACNN_VERBOSE=1`` names the entry each
pass ran, ``=2`` also why the earlier ones declined.
Every entry runs in numba's one thread pool (no library GEMM) and gives results that do not
depend on the thread count. docs/DESIGN.md repeats the table; a test holds the two together.
"""

import os
from typing import Callable, NamedTuple

from ... import verbose
from ..simd import LANES
from . import (
    direct_channels,
    direct_positions,
    direct_samples,
    pointwise,
    winograd,
    winograd4_channels,
    winograd_channels,
)
from .bias import bias_grad
from .geometry import Geometry

# The passes; a bias pass is a backward that needs db alone (a frozen layer with no dx).
FORWARD, INPUT_GRAD, WEIGHT_GRAD, BIAS = "forward", "input_grad", "weight_grad", "bias_grad"
CONV_PASSES = (FORWARD, INPUT_GRAD, WEIGHT_GRAD)


class Implementation(NamedTuple):
    name: str
    passes: tuple
    accepts: Callable  # geometry -> None, or why it cannot run the layer
    forward: Callable  # (out, x, w, b, geometry)
    backward: Callable  # (dx, dw, db, dy, x, w, geometry)
    how: str  # one line, as docs/DESIGN.md's table says it


class Rule(NamedTuple):
    """An ordering rule: where ``applies(geometry)``, entry ``sends_on`` declines a layer it could
    run, because a later entry runs it better (measured: benchmarks/NOTES.md)."""

    name: str
    sends_on: str
    applies: Callable
    why: str


def _bias_only(dx, dw, db, dy, x, w, g):
    bias_grad(db, dy)


IMPLEMENTATIONS = (
    Implementation(
        "bias_only", (BIAS,), lambda g: None, None, _bias_only,
        "the bias gradient alone (a frozen layer that needs no dx): dy summed",
    ),
    Implementation(
        "pointwise", CONV_PASSES, pointwise.accepts, pointwise.forward, pointwise.backward,
        "matrix products on the NCHW planes, on the GEMM micro-kernel",
    ),
    Implementation(
        "subsample", CONV_PASSES, pointwise.accepts_strided, pointwise.forward_strided,
        pointwise.backward_strided, "a copy of every stride-th pixel, then pointwise",
    ),
    Implementation(
        "winograd4_channels", CONV_PASSES, winograd4_channels.accepts, winograd4_channels.forward,
        winograd4_channels.backward,
        "Winograd F(4x4, 3x3) vectorised over channels: 36 products per channel pair for 16 outputs, as "
        "winograd_channels in blocks of tiles; its weight gradient is winograd_channels'",
    ),
    Implementation(
        "winograd_channels", CONV_PASSES, winograd_channels.accepts, winograd_channels.forward,
        winograd_channels.backward,
        "Winograd F(2x2, 3x3) vectorised over channels, all three passes: the input copied channels last, then "
        "per block of tiles the transforms and 16 matrix products in cache",
    ),
    Implementation(
        "direct_samples", CONV_PASSES, direct_samples.accepts, direct_samples.forward, direct_samples.backward,
        "direct convolution vectorised over samples: blocks of LANES samples, one pass per block",
    ),
    Implementation(
        "direct_positions", CONV_PASSES, direct_positions.accepts, direct_positions.forward,
        direct_positions.backward, "direct convolution on flat padded planes, vectorised over positions",
    ),
    Implementation(
        "direct_channels", CONV_PASSES, direct_channels.accepts, direct_channels.forward,
        direct_channels.backward,
        "direct convolution vectorised over output channels, one gather per pass (per stride phase of dx)",
    ),
    Implementation(
        "winograd", (FORWARD, INPUT_GRAD), winograd.accepts, winograd.forward, winograd.backward,
        "Winograd F(2x2, 3x3): 16 products per channel pair instead of 36, vectorised over tiles; after "
        "direct_channels, so forced only (slower here: benchmarks/NOTES.md, entry 48)",
    ),
)  # fmt: skip
# NUMBACNN_CONV=direct: the entries of the versions before Winograd and direct_samples, whose
# results it reproduces bit for bit.
LATER_ENTRIES = ("winograd4_channels", "winograd_channels", "winograd", "direct_samples")
DIRECT = tuple(e.name for e in IMPLEMENTATIONS if e.name not in LATER_ENTRIES)
BY_NAME = {entry.name: entry for entry in IMPLEMENTATIONS}

# Planes below MIN_POSITIONS outputs waste too much of direct_positions' wide rows and whole tiles
# (an 8x8 plane with padding 1: a third of the work); below twice as many, layers whose channel
# counts fill direct_channels' blocks of 2 LANES go there too (benchmarks/NOTES.md, 32, 37, 45).
MIN_POSITIONS = 100


def _small_plane(g):
    whole_blocks = g.channels % (2 * LANES) == 0 and g.k_out % (2 * LANES) == 0
    return g.positions < (2 * MIN_POSITIONS if whole_blocks else MIN_POSITIONS)


# Below WINOGRAD_CHANNELS input or output channels, the Winograd entries' transforms and copies cost
# more than the products they save (benchmarks/NOTES.md, entries 50 and 60).
WINOGRAD_CHANNELS = 32
_NARROW_WHY = f"under {WINOGRAD_CHANNELS} input or output channels, the direct kernels are faster"


def _narrow_channels(g):
    return min(g.channels, g.k_out) < WINOGRAD_CHANNELS


def _uneven_tiles(g):
    """Whether F(4x4, 3x3)'s tiles cover more of the output plane than F(2x2, 3x3)'s (14x14: 16x16
    against 14x14)."""
    oh, ow = g.out_hw
    return 16 * (-(-oh // 4)) * (-(-ow // 4)) > 4 * (-(-oh // 2)) * (-(-ow // 2))


# Past WINOGRAD4_PAIRS pairs of input and output channels (64 -> 64), F(4x4, 3x3) is no faster
# than F(2x2, 3x3): its transformed weights, 36 C K floats, no longer stay in L2 beside a task's
# tiles (benchmarks/NOTES.md, entry 60).
WINOGRAD4_PAIRS = 32 * 32

# direct_samples works on one block of LANES samples at a time, which must stay in the core's L2:
# past SAMPLES_BLOCK_BYTES of input planes per block (16 channels at 32x32 with 16 lanes), its
# tiles read from L3 and direct_positions is faster. Under 2 LANES samples, a block is part empty
# and a thread idle (benchmarks/NOTES.md, entry 59).
SAMPLES_BLOCK_BYTES = 1 << 20


def _large_blocks(g):
    planes = g.channels * (g.height + 2 * g.padding[0] + 1) * (g.width + 2 * g.padding[1])
    return planes * LANES * g.dtype.itemsize > SAMPLES_BLOCK_BYTES


RULES = (
    Rule("narrow_channels", "winograd4_channels", _narrow_channels, _NARROW_WHY),
    Rule(
        "wide_channels", "winograd4_channels", lambda g: g.channels * g.k_out > WINOGRAD4_PAIRS,
        f"past {WINOGRAD4_PAIRS} channel pairs, winograd_channels' F(2x2, 3x3) is as fast",
    ),
    Rule(
        "uneven_tiles", "winograd4_channels", _uneven_tiles,
        "where its 4x4 tiles overrun the plane more than 2x2 tiles do, winograd_channels is as fast",
    ),
    Rule("narrow_channels", "winograd_channels", _narrow_channels, _NARROW_WHY),
    Rule(
        "few_samples", "direct_samples", lambda g: g.batch < 2 * LANES,
        "under 2 LANES samples, direct_positions wastes less",
    ),
    Rule(
        "large_blocks", "direct_samples", _large_blocks,
        f"a block of LANES samples' input planes takes over {SAMPLES_BLOCK_BYTES >> 10} KiB, more than L2 holds",
    ),
    Rule(
        "small_planes", "direct_positions", _small_plane,
        f"under {MIN_POSITIONS} output positions (under {2 * MIN_POSITIONS} where both channel counts fill "
        "blocks of 2 LANES), direct_channels wastes less",
    ),
)  # fmt: skip


def _allowed():
    """The entries NUMBACNN_CONV allows, or None (all); an unknown name is an error listing them."""
    name = os.environ.get("NUMBACNN_CONV", "").strip()
    if not name:
        return None
    if name == "direct":
        return DIRECT
    if name not in BY_NAME or BY_NAME[name].passes == (BIAS,):
        known = ", ".join(["direct"] + [e.name for e in IMPLEMENTATIONS if e.passes != (BIAS,)])
        raise ValueError(f"NUMBACNN_CONV={name!r}: no such convolution implementation (known: {known})")
    return (name,)


# choose()'s answers by (layer, pass, NUMBACNN_CONV): a warm step asks the same questions every
# time, and answering them again cost more than a small layer's convolution (NOTES.md, entry 55).
_CHOSEN = {}


def choose(g, pass_):
    """(entry, [(name, why it declined)]) for a pass of the layer ``g``: the first that accepts it and
    that no rule sends on. NUMBACNN_CONV=<entry> forces that entry for the passes it serves (a
    ValueError saying why when it cannot run the layer); =direct leaves Winograd out."""
    key = (g, pass_, os.environ.get("NUMBACNN_CONV"))
    answer = _CHOSEN.get(key)
    if answer is None:
        answer = _CHOSEN[key] = _choose(g, pass_)
    return answer


def _choose(g, pass_):
    allowed = _allowed() if pass_ != BIAS else None  # a bias pass runs no convolution to force
    if allowed is not None and len(allowed) == 1 and pass_ in BY_NAME[allowed[0]].passes:
        forced = BY_NAME[allowed[0]]
        reason = forced.accepts(g)
        if reason is not None:
            raise ValueError(f"NUMBACNN_CONV={forced.name} cannot run conv2d of {g.describe()}: {reason}")
        return forced, []
    declined = []
    for entry in IMPLEMENTATIONS:
        if pass_ not in entry.passes:
            reason = f"it runs no {pass_} pass"
        elif allowed is not None and len(allowed) > 1 and entry.name not in allowed:
            reason = "left out by NUMBACNN_CONV"
        else:
            reason = entry.accepts(g)
        if reason is None:
            rule = next((r for r in RULES if r.sends_on == entry.name and r.applies(g)), None)
            if rule is None:
                return entry, declined
            reason = f"rule {rule.name}: {rule.why}"
        declined.append((entry.name, reason))
    raise AssertionError(f"no convolution implementation accepts {g.describe()}: {declined}")


def _report(direction, entry, declined, g):
    if verbose.level() < 1:
        return
    text = f"conv2d {direction} of {g.describe()}: {entry.name}"
    if verbose.level() >= 2 and declined:
        text += "".join(f"\n  {name} declined: {why}" for name, why in declined)
    verbose.report(("conv2d", direction, entry.name, g), text)


def conv2d_forward(out, x, w, b, stride, padding, dilation, groups):
    """out (N, K, OH, OW) = conv(x (N, C, H, W), w (K, C/groups, KH, KW)) + b (K,) or None."""
    g = Geometry.of(x, w, stride, padding, dilation, groups)
    entry, declined = choose(g, FORWARD)
    _report(FORWARD, entry, declined, g)
    entry.forward(out, x, w, b, g)


def conv2d_backward(dx, dw, db, dy, x, w, stride, padding, dilation, groups):
    """Gradients of conv2d_forward given dy (N, K, OH, OW).

    dx (N, C, H, W) is overwritten; dw (K, C/groups, KH, KW) and db (K,) are accumulated. Each is
    skipped if None (a frozen weight gets no gradient computed). Each gradient asks the table for
    its entry; one entry that both chose computes both in one call.
    """
    if dx is None and dw is None and db is None:
        return
    g = Geometry.of(x, w, stride, padding, dilation, groups)
    if dx is None and dw is None:
        entry, declined = choose(g, BIAS)
        _report(BIAS, entry, declined, g)
        entry.backward(None, None, db, dy, x, w, g)
        return
    chosen = {}
    for pass_, wanted in ((INPUT_GRAD, dx), (WEIGHT_GRAD, dw)):
        if wanted is not None:
            entry, declined = choose(g, pass_)
            _report(pass_, entry, declined, g)
            chosen[pass_] = entry
    if len(set(chosen.values())) == 1:
        next(iter(chosen.values())).backward(dx, dw, db, dy, x, w, g)
    else:
        chosen[WEIGHT_GRAD].backward(None, dw, db, dy, x, w, g)
        chosen[INPUT_GRAD].backward(dx, None, None, dy, x, w, g)


__all__ = ["BY_NAME", "DIRECT", "IMPLEMENTATIONS", "RULES", "Geometry", "choose", "conv2d_backward", "conv2d_forward"]
