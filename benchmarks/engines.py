"""The workloads of the comparison benchmarks, one builder per engine (numbacnn, PyTorch, NumPy).

Nothing is imported at module level but the standard library: a worker process imports only the
engine it times, so one engine's settings (numbacnn's OMP_WAIT_POLICY, OPENBLAS_THREAD_TIMEOUT)
never reach another's process. Each builder returns ``(step, sync)``: ``step()`` runs one call of
the workload, ``sync()`` waits for queued device work (a no-op on the CPU).
"""

import os

# The environment variable that puts PyTorch's models and inputs in channels-last memory.
TORCH_MEMORY_FORMAT = "TORCH_MEMORY_FORMAT"

# name -> (kind, arguments). "train"/"infer": (model, batch, (C, H, W)); "conv": (N, C, HW, K), a
# 3x3 pad-1 convolution forward + backward.
# conv rows: (N, C, H = W, K, kernel, padding); the first three are the 3x3 layers of issue 24's
# table, the last LeNet-5's conv2.
WORKLOADS = {
    "conv_c32_16": ("conv", (128, 32, 16, 32, 3, 1)),
    "conv_c64_8": ("conv", (128, 64, 8, 64, 3, 1)),
    "conv_c16_32": ("conv", (128, 16, 32, 16, 3, 1)),
    "conv_lenet2": ("conv", (256, 6, 14, 16, 5, 0)),
    "lenet5_train_64": ("train", ("lenet5", 64, (1, 28, 28))),
    "lenet5_train_256": ("train", ("lenet5", 256, (1, 28, 28))),
    "lenet5_infer_256": ("infer", ("lenet5", 256, (1, 28, 28))),
    "resnet20_train_128": ("train", ("resnet20", 128, (1, 28, 28))),
    "resnet20_infer_128": ("infer", ("resnet20", 128, (1, 28, 28))),
}


def label(name):
    kind, args = WORKLOADS[name]
    if kind == "conv":
        n, c, hw, k, kernel, _ = args
        return f"conv2d fwd+bwd N={n} C={c} {hw}x{hw} K={k} {kernel}x{kernel}"
    model, batch, shape = args
    pretty = {"lenet5": "LeNet-5", "resnet20": "ResNet-20"}[model]
    what = "training" if kind == "train" else "inference"
    return f"{pretty} ({'x'.join(map(str, shape))}) {what}, batch {batch}"


def conv_flops(name):
    """Forward + backward FLOPs of a conv workload (backward counts twice the forward)."""
    n, c, hw, k, kernel, padding = WORKLOADS[name][1]
    out = hw + 2 * padding - kernel + 1
    return 3 * 2 * n * k * out * out * c * kernel * kernel


def items_per_call(name):
    """Images per call for model workloads (images/s), None for conv rows (GFLOP/s)."""
    kind, args = WORKLOADS[name]
    return None if kind == "conv" else args[1]


def build(engine, name, device="cpu"):
    kind, args = WORKLOADS[name]
    return {"numbacnn": _numbacnn, "torch": _torch, "numpy": _numpy}[engine](kind, args, device)


# ------------------------------------------------------------------ numbacnn
def _numbacnn(kind, args, device):
    import numbacnn as nc  # noqa: I001  (before numpy: it sets the thread settings OpenBLAS reads at load)
    import numpy as np

    dev = nc.get_device(device)
    rng = np.random.default_rng(0)
    if kind == "conv":
        n, c, hw, k, kernel, padding = args
        conv = nc.layers.Conv2d(c, k, kernel, padding=padding).to(dev)
        x = dev.asarray(rng.standard_normal((n, c, hw, hw)).astype(np.float32))
        out = hw + 2 * padding - kernel + 1
        dy = dev.asarray(rng.standard_normal((n, k, out, out)).astype(np.float32))
        return (lambda: (conv.forward(x), conv.backward(dy))), dev.synchronize
    model_name, batch, shape = args
    model = nc.models.create(model_name, shape[0], 10, shape[1]).to(dev)
    x = dev.asarray(rng.standard_normal((batch,) + shape).astype(np.float32))
    if kind == "infer":
        model.eval()
        return (lambda: model.forward(x)), dev.synchronize
    opt = nc.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    crit = nc.losses.CrossEntropyLoss()
    y = rng.integers(0, 10, batch)

    def step():
        opt.zero_grad()
        # The per-sample losses stay where they are: a GPU step need not wait for a host copy.
        crit.forward(model.forward(x), y, return_device_loss=True)
        model.backward(crit.backward())
        opt.step()

    return step, dev.synchronize


# ------------------------------------------------------------------ PyTorch
def torch_model(name, shape):
    import torch

    nn = torch.nn
    if name == "lenet5":
        side = ((shape[1] + 4 - 4) // 2 - 4) // 2
        return nn.Sequential(
            nn.Conv2d(shape[0], 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(16 * side * side, 120), nn.ReLU(),
            nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, 10),
        )  # fmt: skip

    class Block(nn.Module):
        def __init__(self, cin, cout, stride):
            super().__init__()
            self.c1, self.b1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout)
            self.c2, self.b2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout)
            self.short = (
                nn.Identity()
                if stride == 1 and cin == cout
                else nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
            )

        def forward(self, x):
            h = torch.relu(self.b1(self.c1(x)))
            return torch.relu(self.b2(self.c2(h)) + self.short(x))

    depth = int(name[len("resnet") :])
    n, layers, c = (depth - 2) // 6, [], 16
    for mult, stride in ((1, 1), (2, 2), (4, 2)):
        for i in range(n):
            layers.append(Block(c, 16 * mult, stride if i == 0 else 1))
            c = 16 * mult
    return nn.Sequential(
        nn.Conv2d(shape[0], 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU(), *layers,
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, 10),
    )  # fmt: skip


def _torch(kind, args, device):
    """PyTorch in NCHW, or channels last where TORCH_MEMORY_FORMAT=channels_last (compare.py's
    column for it: oneDNN's fastest CPU convolutions)."""
    import torch

    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    layout = torch.channels_last if os.environ.get(TORCH_MEMORY_FORMAT) == "channels_last" else torch.contiguous_format
    if kind == "conv":
        n, c, hw, k, kernel, padding = args
        conv = torch.nn.Conv2d(c, k, kernel, padding=padding).to(device, memory_format=layout)
        x = torch.randn(n, c, hw, hw, device=device).contiguous(memory_format=layout).requires_grad_()
        out = hw + 2 * padding - kernel + 1
        dy = torch.randn(n, k, out, out, device=device).contiguous(memory_format=layout)

        def conv_step():
            conv.zero_grad()
            conv(x).backward(dy)

        return conv_step, sync
    model_name, batch, shape = args
    model = torch_model(model_name, shape).to(device, memory_format=layout)
    x = torch.randn((batch,) + shape, device=device).contiguous(memory_format=layout)
    if kind == "infer":
        model.eval()

        def infer():
            with torch.no_grad():
                model(x)

        return infer, sync
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    crit = torch.nn.CrossEntropyLoss()
    y = torch.randint(0, 10, (batch,), device=device)

    def step():
        opt.zero_grad()
        crit(model(x), y).backward()
        opt.step()

    return step, sync


# ------------------------------------------------------------------ NumPy (conv rows only)
def _numpy(kind, args, device):
    """The NumPy reference: im2col by stride tricks + one matmul per direction, float32."""
    import numpy as np

    if kind != "conv" or device != "cpu" or args[4:] != (3, 1):
        return None
    n, c, hw, k = args[:4]
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, c, hw, hw)).astype(np.float32)
    w = rng.standard_normal((k, c, 3, 3)).astype(np.float32)
    dy = rng.standard_normal((n, k, hw, hw)).astype(np.float32)

    def step():
        xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
        win = np.lib.stride_tricks.sliding_window_view(xp, (3, 3), axis=(2, 3))  # n c h w 3 3
        cols = win.transpose(1, 4, 5, 0, 2, 3).reshape(c * 9, -1)
        y = w.reshape(k, -1) @ cols
        d = dy.transpose(1, 0, 2, 3).reshape(k, -1)
        d @ cols.T  # dW
        w.reshape(k, -1).T @ d  # dcols (col2im not counted: the reference is generous)
        return y

    return step, lambda: None
