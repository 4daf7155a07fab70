"""Losses on CUDA: fused, numerically stable softmax cross-entropy; mean squared error.

Shapes as in ``kernels/cpu/loss.py``: logits, probs, dlogits (N, K); targets (N,) int64; losses (N,).
Cross-entropy runs one thread per sample (K is small: a classifier's classes); MSE's mean is one
block reduction in a fixed order.
"""

from numba import cuda, float64

from .. import shared_math
from .launch import REDUCE_THREADS, flat, launch_1d, require_device
from .reduce import block_sum

_math = shared_math.compiled("cuda", cuda.jit(device=True))
_cross_entropy_row = _math.cross_entropy_row
_cross_entropy_logit_grad = _math.cross_entropy_logit_grad


@cuda.jit
def _ce_forward(losses, probs, logits, targets, smoothing):
    n_batch = logits.shape[0]
    for n in range(cuda.grid(1), n_batch, cuda.gridsize(1)):
        _cross_entropy_row(losses, probs, logits, targets, smoothing, n)


@cuda.jit
def _ce_backward(dlogits, probs, targets, smoothing, scale):
    n_classes = probs.shape[1]
    for e in range(cuda.grid(1), probs.size, cuda.gridsize(1)):
        n, k = e // n_classes, e % n_classes
        dlogits[n, k] = _cross_entropy_logit_grad(probs, targets, smoothing, scale, n, k)


@cuda.jit
def _mse_forward(loss, diff, pred, target):
    """One block: diff = pred - target, loss[0] = mean(diff^2)."""
    shared = cuda.shared.array(REDUCE_THREADS, float64)
    acc = 0.0
    for i in range(cuda.threadIdx.x, pred.size, cuda.blockDim.x):
        d = pred[i] - target[i]
        diff[i] = d
        acc += d * d
    total = block_sum(shared, acc)
    if cuda.threadIdx.x == 0:
        loss[0] = total / pred.size


@cuda.jit
def _scale(out, x, factor):
    for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        out[i] = x[i] * factor


def softmax_cross_entropy_forward(losses, probs, logits, targets, label_smoothing):
    """losses (N,) = cross-entropy of softmax(logits) against targets; probs (N, K) saved."""
    require_device("softmax_cross_entropy_forward", losses=losses, probs=probs, logits=logits, targets=targets)
    launch_1d(_ce_forward, logits.shape[0], losses, probs, logits, targets, float(label_smoothing))


def softmax_cross_entropy_backward(dlogits, probs, targets, label_smoothing, scale):
    """dlogits (N, K) = scale * (probs - smoothed one-hot); scale = 1/N for the mean."""
    require_device("softmax_cross_entropy_backward", dlogits=dlogits, probs=probs, targets=targets)
    launch_1d(_ce_backward, probs.size, dlogits, probs, targets, float(label_smoothing), probs.dtype.type(scale))


def mse_forward(loss, diff, pred, target):
    """loss (1,) = mean((pred - target)^2); diff = pred - target saved (same shape as pred)."""
    require_device("mse_forward", loss=loss, diff=diff, pred=pred, target=target)
    _mse_forward[1, REDUCE_THREADS](loss, flat(diff), flat(pred), flat(target))


def mse_backward(dpred, diff, scale):
    """dpred = scale * 2 * diff / size; scale is the upstream gradient of the mean."""
    require_device("mse_backward", dpred=dpred, diff=diff)
    launch_1d(_scale, diff.size, flat(dpred), flat(diff), diff.dtype.type(2.0 * scale / diff.size))
