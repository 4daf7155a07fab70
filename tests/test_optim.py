"""Optimizers against PyTorch's update rules written out in NumPy; schedules; flat storage."""

import math

import numpy as np
import pytest

import numbacnn as nc
from numbacnn.layers.params import Parameter


def make_params(rng, dtype=np.float64):
    shapes = [(3, 2), (4,), (2, 2, 2)]
    return [Parameter(rng.standard_normal(s).astype(dtype), np.zeros(s, dtype)) for s in shapes]


def run_steps(opt, params, grads_seq):
    for grads in grads_seq:
        opt.zero_grad()
        for p, g in zip(params, grads):
            p.grad += g
        opt.step()
    return [p.data.copy() for p in params]


def sgd_ref(ws, grads_seq, lr, momentum, nesterov, wd):
    ws = [w.copy() for w in ws]
    bufs = [np.zeros_like(w) for w in ws]
    for grads in grads_seq:
        for i, (w, g) in enumerate(zip(ws, grads)):
            g = g + wd * w
            if momentum:
                bufs[i] = momentum * bufs[i] + g
                g = g + momentum * bufs[i] if nesterov else bufs[i]
            ws[i] = w - lr * g
    return ws


def adam_ref(ws, grads_seq, lr, b1, b2, eps, wd, decoupled):
    ws = [w.copy() for w in ws]
    m = [np.zeros_like(w) for w in ws]
    v = [np.zeros_like(w) for w in ws]
    for t, grads in enumerate(grads_seq, start=1):
        for i, (w, g) in enumerate(zip(ws, grads)):
            if decoupled:
                w = w * (1 - lr * wd)
            else:
                g = g + wd * w
            m[i] = b1 * m[i] + (1 - b1) * g
            v[i] = b2 * v[i] + (1 - b2) * g * g
            mhat, vhat = m[i] / (1 - b1**t), v[i] / (1 - b2**t)
            ws[i] = w - lr * mhat / (np.sqrt(vhat) + eps)
    return ws


def grad_sequence(rng, params, steps=5):
    return [[rng.standard_normal(p.shape) for p in params] for _ in range(steps)]


@pytest.mark.parametrize(
    "momentum,nesterov,wd", [(0.0, False, 0.0), (0.9, False, 0.0), (0.9, True, 1e-2), (0.5, False, 0.1)]
)
def test_sgd_matches_pytorch_rule(momentum, nesterov, wd, rng):
    params = make_params(rng)
    start = [p.data.copy() for p in params]
    grads = grad_sequence(rng, params)
    opt = nc.optim.SGD(params, lr=0.1, momentum=momentum, nesterov=nesterov, weight_decay=wd)
    for got, want in zip(run_steps(opt, params, grads), sgd_ref(start, grads, 0.1, momentum, nesterov, wd)):
        np.testing.assert_allclose(got, want, rtol=1e-12)


@pytest.mark.parametrize("cls,wd", [(nc.optim.Adam, 0.0), (nc.optim.Adam, 0.05), (nc.optim.AdamW, 0.05)])
def test_adam_matches_pytorch_rule(cls, wd, rng):
    params = make_params(rng)
    start = [p.data.copy() for p in params]
    grads = grad_sequence(rng, params)
    opt = cls(params, lr=0.01, weight_decay=wd)
    want = adam_ref(start, grads, 0.01, 0.9, 0.999, 1e-8, wd, cls is nc.optim.AdamW)
    for got, w in zip(run_steps(opt, params, grads), want):
        np.testing.assert_allclose(got, w, rtol=1e-10)


def test_parameters_become_views_of_one_flat_buffer(rng):
    params = make_params(rng, np.float32)
    values = [p.data.copy() for p in params]
    opt = nc.optim.SGD(params, lr=0.1)
    for p, v in zip(params, values):
        np.testing.assert_array_equal(p.data, v)
        assert np.shares_memory(p.data, opt.storage.data)
        assert np.shares_memory(p.grad, opt.storage.grad)


def test_moving_the_model_after_building_the_optimizer_is_reported():
    model = nc.layers.Linear(3, 2)
    opt = nc.optim.SGD(model.parameters(), lr=0.1)
    model.to(np.float64)
    with pytest.raises(RuntimeError, match="build the optimizer after moving the model"):
        opt.step()


def test_storage_check_follows_memory_not_objects(rng):
    """A grad rebound to a new array would never be updated: reported. A parameter rebound to
    another view of the same storage memory is still intact."""
    params = make_params(rng, np.float32)
    opt = nc.optim.SGD(params, lr=0.1)
    params[0].data = params[0].data.reshape(params[0].shape)  # new object, same memory
    assert opt.storage.is_intact()
    opt.step()
    params[1].grad = np.zeros_like(params[1].grad)
    assert not opt.storage.is_intact()
    with pytest.raises(RuntimeError, match="build the optimizer after moving the model"):
        opt.step()


def test_schedules():
    opt = nc.optim.SGD([Parameter(np.zeros(2), np.zeros(2))], lr=1.0)
    step = nc.optim.StepLR(opt, step_size=3, gamma=0.5)
    lrs = []
    for _ in range(7):
        lrs.append(opt.lr)
        step.step()
    assert lrs == [1, 1, 1, 0.5, 0.5, 0.5, 0.25]

    opt.lr = 1.0
    cos = nc.optim.CosineAnnealingLR(opt, total_steps=14, min_lr=0.1, warmup_steps=4)
    lrs = [opt.lr]
    for _ in range(15):
        cos.step()
        lrs.append(opt.lr)
    assert lrs[:4] == pytest.approx([0.25, 0.5, 0.75, 1.0])
    assert lrs[4 + 5] == pytest.approx(0.1 + 0.45 * (1 + math.cos(math.pi / 2)))
    assert lrs[14] == pytest.approx(0.1) and lrs[15] == pytest.approx(0.1)
    state = cos.state_dict()
    opt.lr = 123.0
    cos.load_state_dict(state)
    assert opt.lr == pytest.approx(0.1)


def test_optimizer_state_round_trip(rng):
    params = make_params(rng)
    grads = grad_sequence(rng, params, 4)
    opt = nc.optim.Adam(params, lr=0.01)
    run_steps(opt, params, grads[:2])
    state = opt.state_dict()
    data = [p.data.copy() for p in params]
    run_steps(opt, params, grads[2:])
    expected = [p.data.copy() for p in params]

    params2 = [Parameter(d.copy(), np.zeros_like(d)) for d in data]
    opt2 = nc.optim.Adam(params2, lr=0.5)
    opt2.load_state_dict(state)
    assert opt2.lr == 0.01 and opt2.steps == 2
    for got, want in zip(run_steps(opt2, params2, grads[2:]), expected):
        np.testing.assert_array_equal(got, want)
