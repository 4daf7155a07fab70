"""Losses on the CPU: fused, numerically stable softmax cross-entropy; mean squared error.

Shapes: logits, probs, dlogits (N, K); targets (N,) int64 class indices; losses (N,).
With label smoothing e the target distribution is (1 - e) * onehot + e / K (PyTorch's definition).
"""

from numba import njit, prange

from .. import shared_math

_math = shared_math.compiled("cpu", njit(inline="always"))
_cross_entropy_row = _math.cross_entropy_row
_cross_entropy_logit_grad = _math.cross_entropy_logit_grad


@njit(parallel=True, cache=True)
def _ce_forward(losses, probs, logits, targets, smoothing):
    n_batch = logits.shape[0]
    for n in prange(n_batch):
        _cross_entropy_row(losses, probs, logits, targets, smoothing, n)


@njit(parallel=True, cache=True)
def _ce_backward(dlogits, probs, targets, smoothing, scale):
    n_batch, n_classes = probs.shape
    for n in prange(n_batch):
        for k in range(n_classes):
            dlogits[n, k] = _cross_entropy_logit_grad(probs, targets, smoothing, scale, n, k)


@njit(cache=True)
def _mse_forward(loss, diff, pred, target):
    acc = 0.0
    for i in range(pred.size):
        d = pred[i] - target[i]
        diff[i] = d
        acc += d * d
    loss[0] = acc / pred.size


@njit(parallel=True, cache=True)
def _scale(out, x, factor):
    for i in prange(x.size):
        out[i] = x[i] * factor


def softmax_cross_entropy_forward(losses, probs, logits, targets, label_smoothing):
    """losses (N,) = cross-entropy of softmax(logits) against targets; probs (N, K) saved."""
    _ce_forward(losses, probs, logits, targets, float(label_smoothing))


def softmax_cross_entropy_backward(dlogits, probs, targets, label_smoothing, scale):
    """dlogits (N, K) = scale * (probs - smoothed one-hot); scale = 1/N for the mean."""
    _ce_backward(dlogits, probs, targets, float(label_smoothing), probs.dtype.type(scale))


def mse_forward(loss, diff, pred, target):
    """loss (1,) = mean((pred - target)^2); diff = pred - target saved (same shape as pred)."""
    _mse_forward(loss, diff.reshape(-1), pred.reshape(-1), target.reshape(-1))


def mse_backward(dpred, diff, scale):
    """dpred = scale * 2 * diff / size; scale is the upstream gradient of the mean."""
    _scale(dpred.reshape(-1), diff.reshape(-1), diff.dtype.type(2.0 * scale / diff.size))
