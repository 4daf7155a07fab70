"""State dicts move between numbacnn and the equivalent PyTorch modules, both ways, with equal
outputs (the README's claim). Skipped where PyTorch is not installed; CI installs it."""

import numpy as np
import pytest

import numbacnn as nc

torch = pytest.importorskip("torch")
tnn = torch.nn


def torch_lenet5(in_channels=1, num_classes=10):
    return tnn.Sequential(
        tnn.Conv2d(in_channels, 6, 5, padding=2), tnn.ReLU(), tnn.MaxPool2d(2),
        tnn.Conv2d(6, 16, 5), tnn.ReLU(), tnn.MaxPool2d(2),
        tnn.Flatten(),
        tnn.Linear(16 * 5 * 5, 120), tnn.ReLU(),
        tnn.Linear(120, 84), tnn.ReLU(),
        tnn.Linear(84, num_classes),
    )  # fmt: skip


class TorchBasicBlock(tnn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = tnn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = tnn.BatchNorm2d(cout)
        self.conv2 = tnn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = tnn.BatchNorm2d(cout)
        self.shortcut = None
        if stride != 1 or cin != cout:
            self.shortcut = tnn.Sequential(tnn.Conv2d(cin, cout, 1, stride, bias=False), tnn.BatchNorm2d(cout))

    def forward(self, x):
        h = torch.relu(self.bn1(self.conv1(x)))
        h = self.bn2(self.conv2(h))
        return torch.relu(h + (x if self.shortcut is None else self.shortcut(x)))


class TorchResNet(tnn.Module):
    def __init__(self, depth=20, in_channels=1, num_classes=10, width=16):
        super().__init__()
        n = (depth - 2) // 6
        self.conv1 = tnn.Conv2d(in_channels, width, 3, padding=1, bias=False)
        self.bn1 = tnn.BatchNorm2d(width)
        channels = width
        for stage, (mult, stride) in enumerate(((1, 1), (2, 2), (4, 2)), start=1):
            blocks = []
            for i in range(n):
                blocks.append(TorchBasicBlock(channels, width * mult, stride if i == 0 else 1))
                channels = width * mult
            setattr(self, f"layer{stage}", tnn.Sequential(*blocks))
        self.fc = tnn.Linear(channels, num_classes)

    def forward(self, x):
        x = torch.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(x.mean(dim=(2, 3)))


def _perturb_batchnorm_stats(torch_model, seed):
    """Non-trivial running statistics, so the eval-mode comparison exercises them."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in torch_model.modules():
            if isinstance(m, tnn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.num_features, generator=gen) * 0.1)
                m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
                m.weight.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
                m.bias.copy_(torch.randn(m.num_features, generator=gen) * 0.1)


CASES = [
    ("lenet5", lambda: nc.models.lenet5(1, 10), torch_lenet5),
    ("resnet20", lambda: nc.models.resnet(20, 1, 10), lambda: TorchResNet(20, 1, 10)),
]


@pytest.mark.parametrize("name,ours,theirs", CASES, ids=[c[0] for c in CASES])
def test_numbacnn_weights_load_into_pytorch(name, ours, theirs, rng):
    model = ours()
    if name == "resnet20":  # give BatchNorm real statistics by training on a few batches
        for _ in range(2):
            model.forward(rng.standard_normal((8, 1, 28, 28)).astype(np.float32))
    model.eval()
    reference = theirs().eval()
    state = {k: torch.from_numpy(v) for k, v in model.state_dict().items()}
    reference.load_state_dict(state, strict=True)
    x = rng.standard_normal((4, 1, 28, 28)).astype(np.float32)
    with torch.no_grad():
        want = reference(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(model.forward(x), want, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name,ours,theirs", CASES, ids=[c[0] for c in CASES])
def test_pytorch_weights_load_into_numbacnn(name, ours, theirs, rng):
    torch.manual_seed(0)
    reference = theirs()
    _perturb_batchnorm_stats(reference, 1)
    reference.eval()
    model = ours().eval()
    model.load_state_dict({k: v.detach().numpy() for k, v in reference.state_dict().items()})
    x = rng.standard_normal((4, 1, 28, 28)).astype(np.float32)
    with torch.no_grad():
        want = reference(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(model.forward(x), want, rtol=1e-4, atol=1e-4)
    # Training mode too (batch statistics), where the layers' arithmetic differs most.
    reference.train()
    model.train()
    with torch.no_grad():
        want = reference(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(model.forward(x), want, rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("name,ours,theirs", CASES, ids=[c[0] for c in CASES])
def test_safetensors_files_travel_both_ways(name, ours, theirs, rng, tmp_path):
    st_torch = pytest.importorskip("safetensors.torch")
    model = ours()
    for _ in range(2):
        model.forward(rng.standard_normal((8, 1, 28, 28)).astype(np.float32))
    model.eval()
    model.save(tmp_path / "ours.safetensors")
    reference = theirs().eval()
    reference.load_state_dict(st_torch.load_file(str(tmp_path / "ours.safetensors")), strict=True)
    x = rng.standard_normal((4, 1, 28, 28)).astype(np.float32)
    with torch.no_grad():
        want = reference(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(model.forward(x), want, rtol=1e-4, atol=1e-4)
    # And back: a file PyTorch wrote loads into a fresh numbacnn model.
    _perturb_batchnorm_stats(reference, 2)
    st_torch.save_file(reference.state_dict(), str(tmp_path / "theirs.safetensors"))
    back = ours().eval().load(tmp_path / "theirs.safetensors")
    with torch.no_grad():
        want = reference(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(back.forward(x), want, rtol=1e-4, atol=1e-4)
