"""Losses in NumPy. Shapes: logits, probs, dlogits (N, K); targets (N,) int; losses (N,);
pred, target, diff, dpred any shape; loss (1,)."""

import numpy as np


def softmax_cross_entropy_forward(losses, probs, logits, targets, label_smoothing):
    """losses (N,) = cross-entropy of softmax(logits) against targets; probs (N, K) saved."""
    z = logits - logits.max(axis=1, keepdims=True)
    logp = z - np.log(np.exp(z.astype(np.float64)).sum(axis=1, keepdims=True))
    probs[...] = np.exp(logp)
    target_term = -logp[np.arange(len(targets)), targets]
    losses[...] = (1.0 - label_smoothing) * target_term - label_smoothing * logp.mean(axis=1)


def softmax_cross_entropy_backward(dlogits, probs, targets, label_smoothing, scale):
    """dlogits (N, K) = scale * (probs - smoothed one-hot); scale = 1/N for the mean."""
    target = np.full(probs.shape, label_smoothing / probs.shape[1])
    target[np.arange(len(targets)), targets] += 1.0 - label_smoothing
    dlogits[...] = scale * (probs - target)


def mse_forward(loss, diff, pred, target):
    """loss (1,) = mean((pred - target)^2); diff = pred - target saved (same shape as pred)."""
    np.subtract(pred, target, out=diff)
    loss[0] = (diff.astype(np.float64) ** 2).sum() / pred.size


def mse_backward(dpred, diff, scale):
    """dpred = scale * 2 * diff / size; scale is the upstream gradient of the mean."""
    dpred[...] = diff * dpred.dtype.type(2.0 * scale / diff.size)
