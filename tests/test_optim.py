"""Optimizers against the NumPy kernels and PyTorch; schedules; flat storage."""

import math

import numpy as np
import pytest

import numbacnn as nc
from numbacnn.kernels import npy
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


def npy_steps(start, grads_seq, kernel, hyper, state=1):
    """The parameters after each step of the NumPy kernel (kernels/npy: the one copy of the rule),
    one parameter array at a time in float64; ``state``: optimizer state arrays per parameter."""
    ws = [w.copy() for w in start]
    states = [[np.zeros_like(w) for _ in range(state)] for w in ws]
    for t, grads in enumerate(grads_seq, start=1):
        for w, g, st in zip(ws, grads, states):
            kernel(w, g, *st, *hyper(t))
    return ws


def torch_steps(start, grads_seq, make_optimizer):
    """The same steps with PyTorch's optimizer (an independent implementation of the rule)."""
    torch = pytest.importorskip("torch")
    tensors = [torch.tensor(w, requires_grad=True) for w in start]
    opt = make_optimizer(tensors)
    for grads in grads_seq:
        for t, g in zip(tensors, grads):
            t.grad = torch.tensor(g)
        opt.step()
    return [t.detach().numpy() for t in tensors]


def grad_sequence(rng, params, steps=5):
    return [[rng.standard_normal(p.shape) for p in params] for _ in range(steps)]


@pytest.mark.parametrize(
    "momentum,nesterov,wd", [(0.0, False, 0.0), (0.9, False, 0.0), (0.9, True, 1e-2), (0.5, False, 0.1)]
)
def test_sgd_matches_the_numpy_rule_and_pytorch(momentum, nesterov, wd, rng):
    params = make_params(rng)
    start = [p.data.copy() for p in params]
    grads = grad_sequence(rng, params)
    opt = nc.optim.SGD(params, lr=0.1, momentum=momentum, nesterov=nesterov, weight_decay=wd)
    got = run_steps(opt, params, grads)
    want = npy_steps(start, grads, npy.sgd_step, lambda t: (0.1, momentum, wd, nesterov))
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-12)

    def torch_sgd(tensors):
        return __import__("torch").optim.SGD(tensors, lr=0.1, momentum=momentum, nesterov=nesterov, weight_decay=wd)

    for g, w in zip(got, torch_steps(start, grads, torch_sgd)):
        np.testing.assert_allclose(g, w, rtol=1e-10)


@pytest.mark.parametrize("cls,wd", [(nc.optim.Adam, 0.0), (nc.optim.Adam, 0.05), (nc.optim.AdamW, 0.05)])
def test_adam_matches_the_numpy_rule_and_pytorch(cls, wd, rng):
    params = make_params(rng)
    start = [p.data.copy() for p in params]
    grads = grad_sequence(rng, params)
    opt = cls(params, lr=0.01, weight_decay=wd)
    decoupled = cls is nc.optim.AdamW
    got = run_steps(opt, params, grads)
    want = npy_steps(start, grads, npy.adam_step, lambda t: (0.01, 0.9, 0.999, 1e-8, wd, decoupled, t), state=2)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-10)

    def torch_adam(tensors):
        torch = __import__("torch")
        return (torch.optim.AdamW if decoupled else torch.optim.Adam)(tensors, lr=0.01, weight_decay=wd)

    for g, w in zip(got, torch_steps(start, grads, torch_adam)):
        np.testing.assert_allclose(g, w, rtol=1e-8, atol=1e-12)


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
