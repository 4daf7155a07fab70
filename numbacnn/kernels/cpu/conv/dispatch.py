"""2-D convolution on the CPU: the dispatch table, ``IMPLEMENTATIONS``.

Shapes: x (N, C, H, W), w (K, C/groups, KH, KW), b (K,) or None, out (N, K, OH, OW).

Each entry says whether it can run a layer (``accepts(geometry)``: None, or the reason it cannot)
and which passes it serves; all run forward and backward on one signature. A call takes the first
entry that can run its pass and that no ordering rule (``RULES``: "should run", each with a name)
sends on; the forward and the backward of a layer ask the same question, so both take one path.
``NUMBACNN_CONV=<name>`` forces an entry (an error says why when it cannot run a layer);
``NUMBACNN_VERBOSE=1`` names the entry each layer ran, ``=2`` also why the earlier ones declined.
Every entry runs in numba's one thread pool (no library GEMM) and gives results that do not
depend on the thread count. docs/DESIGN.md repeats the table; a test holds the two together.
"""

import os
from typing import Callable, NamedTuple

from ... import verbose
from ..simd import LANES
from . import direct_channels, direct_positions, pointwise
from .bias import bias_grad
from .geometry import Geometry

FORWARD, BACKWARD, BIAS = "forward", "backward", "bias"  # the passes: a bias pass needs db alone


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
        "pointwise", (FORWARD, BACKWARD), pointwise.accepts, pointwise.forward, pointwise.backward,
        "matrix products on the NCHW planes, on the GEMM micro-kernel",
    ),
    Implementation(
        "subsample", (FORWARD, BACKWARD), pointwise.accepts_strided, pointwise.forward_strided,
        pointwise.backward_strided, "a copy of every stride-th pixel, then pointwise",
    ),
    Implementation(
        "direct_positions", (FORWARD, BACKWARD), direct_positions.accepts, direct_positions.forward,
        direct_positions.backward, "direct convolution on flat padded planes, vectorised over positions",
    ),
    Implementation(
        "direct_channels", (FORWARD, BACKWARD), direct_channels.accepts, direct_channels.forward,
        direct_channels.backward,
        "direct convolution vectorised over output channels, one gather per pass (per stride phase of dx)",
    ),
)  # fmt: skip
BY_NAME = {entry.name: entry for entry in IMPLEMENTATIONS}

# Planes below MIN_POSITIONS outputs waste too much of direct_positions' wide rows and whole tiles
# (an 8x8 plane with padding 1: a third of the work); below twice as many, layers whose channel
# counts fill direct_channels' blocks of 2 LANES go there too (benchmarks/NOTES.md, 32, 37, 45).
MIN_POSITIONS = 100


def _small_plane(g):
    whole_blocks = g.channels % (2 * LANES) == 0 and g.k_out % (2 * LANES) == 0
    return g.positions < (2 * MIN_POSITIONS if whole_blocks else MIN_POSITIONS)


RULES = (
    Rule(
        "small_planes", "direct_positions", _small_plane,
        f"under {MIN_POSITIONS} output positions (under {2 * MIN_POSITIONS} where both channel counts fill "
        "blocks of 2 LANES), direct_channels wastes less",
    ),
)  # fmt: skip


def _forced():
    """The entry NUMBACNN_CONV names, or None; an unknown name is an error listing the known."""
    name = os.environ.get("NUMBACNN_CONV", "").strip()
    if not name:
        return None
    if name not in BY_NAME or BY_NAME[name].passes == (BIAS,):
        known = ", ".join(e.name for e in IMPLEMENTATIONS if e.passes != (BIAS,))
        raise ValueError(f"NUMBACNN_CONV={name!r}: no such convolution implementation (known: {known})")
    return BY_NAME[name]


def choose(g, pass_):
    """(entry, [(name, why it declined)]) for a pass of the layer ``g``: the first that accepts it and
    that no rule sends on, or the one NUMBACNN_CONV forces (a ValueError saying why it cannot)."""
    forced = _forced() if pass_ != BIAS else None  # a bias pass runs no convolution to force
    if forced is not None:
        reason = forced.accepts(g)
        if reason is not None:
            raise ValueError(f"NUMBACNN_CONV={forced.name} cannot run conv2d of {g.describe()}: {reason}")
        return forced, []
    declined = []
    for entry in IMPLEMENTATIONS:
        reason = f"it runs no {pass_} pass" if pass_ not in entry.passes else entry.accepts(g)
        if reason is None:
            rule = next((r for r in RULES if r.sends_on == entry.name and r.applies(g)), None)
            if rule is None:
                return entry, declined
            reason = f"rule {rule.name}: {rule.why}"
        declined.append((entry.name, reason))
    raise AssertionError(f"no convolution implementation accepts {g.describe()}: {declined}")


def _report(direction, entry, declined, g):
    text = f"conv2d {direction} of {g.describe()}: {entry.name}"
    if verbose.level() >= 2 and declined:
        text += "".join(f"\n  {name} declined: {why}" for name, why in declined)
    verbose.report(("conv2d", direction, entry.name, g), text)


def conv2d_forward(out, x, w, b, stride, padding, dilation, groups):
    """out (N, K, OH, OW) = conv(x (N, C, H, W), w (K, C/groups, KH, KW)) + b (K,) or None."""
    g = Geometry.of(x, w, stride, padding, dilation, groups)
    entry, declined = choose(g, FORWARD)
    _report("forward", entry, declined, g)
    entry.forward(out, x, w, b, g)


def conv2d_backward(dx, dw, db, dy, x, w, stride, padding, dilation, groups):
    """Gradients of conv2d_forward given dy (N, K, OH, OW).

    dx (N, C, H, W) is overwritten; dw (K, C/groups, KH, KW) and db (K,) are accumulated. Each is
    skipped if None (a frozen weight gets no gradient computed).
    """
    if dx is None and dw is None and db is None:
        return
    g = Geometry.of(x, w, stride, padding, dilation, groups)
    entry, declined = choose(g, BIAS if dx is None and dw is None else BACKWARD)
    _report("backward", entry, declined, g)
    entry.backward(dx, dw, db, dy, x, w, g)


__all__ = ["BY_NAME", "IMPLEMENTATIONS", "RULES", "Geometry", "choose", "conv2d_backward", "conv2d_forward"]
