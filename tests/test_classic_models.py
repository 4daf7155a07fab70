"""The classic architectures: ResNet with Bottleneck blocks, VGG-, AlexNet- and Inception-style
networks. Shapes and summaries for every registered model, the initial loss, learning, and (where
PyTorch is installed) state dicts that load key for key into the equivalent PyTorch modules
written here from the papers' descriptions, with equal outputs."""

import json
import math
from collections import OrderedDict

import numpy as np
import pytest

import numbacnn as nc
from numbacnn.data import DataLoader, synthetic

CLASSIC = ["resnet29_bottleneck", "vgg11_small", "alexnet_small", "inception_small"]


@pytest.mark.parametrize("name", sorted(nc.models.REGISTRY))
def test_every_model_summarises_from_the_cli(name, cli):
    r = cli("summary", name, "--input-shape", "1,28,28", "--json")
    assert r.exit_code == 0, r.output
    summary = json.loads(r.output)
    assert summary["total_params"] == nc.models.create(name, 1, 10, 28).num_parameters()
    assert summary["total_flops"] > 0


@pytest.mark.parametrize("name", CLASSIC)
@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 32, 32)])
def test_classic_models_take_both_image_sizes(name, shape, rng):
    nc.manual_seed(0)
    model = nc.models.create(name, shape[0], 10, shape[1])
    x = rng.standard_normal((4, *shape)).astype(np.float32)
    y = rng.integers(0, 10, 4)
    logits = model.forward(x)
    assert logits.shape == (4, 10)
    crit = nc.losses.CrossEntropyLoss()
    loss = crit.forward(logits, y)
    assert abs(loss - math.log(10)) < 0.6, loss  # a fresh model knows nothing
    assert model.backward(crit.backward()) is None  # no gradient w.r.t. the images unless asked
    assert all(np.isfinite(p.grad).all() for p in model.parameters())


@pytest.mark.parametrize("name", CLASSIC)
def test_classic_models_learn_a_small_batch(name):
    data = synthetic(train_size=64, test_size=8, size=28, seed=0)
    x, y = (a.copy() for a in next(iter(DataLoader(data.train_images, data.train_labels, 64, shuffle=False))))
    nc.manual_seed(1)
    model = nc.models.create(name, 1, 10, 28)
    opt = nc.optim.Adam(model.parameters(), lr=2e-3)
    crit = nc.losses.CrossEntropyLoss()
    losses = []
    for _ in range(40):
        opt.zero_grad()
        losses.append(crit.forward(model.forward(x), y))
        model.backward(crit.backward())
        opt.step()
    # AlexNet (no normalisation, dropout 0.5 twice) learns slowest: ~0.8 of its first loss by now.
    assert losses[-1] < 0.85 * losses[0], losses


def test_bottleneck_depth_validation_and_keys():
    with pytest.raises(ValueError, match=r"9n\+2"):
        nc.models.resnet(20 + 1, block="bottleneck")
    with pytest.raises(ValueError, match="'basic' or 'bottleneck'"):
        nc.models.resnet(20, block="wide")
    keys = list(nc.models.resnet(11, 1, 10, block="bottleneck").state_dict())
    assert "layer1.0.conv3.weight" in keys and "layer1.0.shortcut.0.weight" in keys
    assert nc.models.resnet(29, 1, 10, block="bottleneck").fc.in_features == 256


# --------------------------------------------------------------------------- PyTorch equivalents
def _torch_builders():
    torch = pytest.importorskip("torch")
    nn = torch.nn

    def conv_bn_relu(cin, cout, k):
        return nn.Sequential(nn.Conv2d(cin, cout, k, padding=k // 2, bias=False), nn.BatchNorm2d(cout), nn.ReLU())

    class Concat(nn.Module):
        def __init__(self, *branches):
            super().__init__()
            for i, b in enumerate(branches):
                self.add_module(str(i), b)

        def forward(self, x):
            return torch.cat([b(x) for b in self.children()], dim=1)

    def inception(cin, c1, c3r, c3, c5r, c5, pp):
        return Concat(
            conv_bn_relu(cin, c1, 1),
            nn.Sequential(conv_bn_relu(cin, c3r, 1), conv_bn_relu(c3r, c3, 3)),
            nn.Sequential(conv_bn_relu(cin, c5r, 1), conv_bn_relu(c5r, c5, 5)),
            nn.Sequential(nn.MaxPool2d(3, 1, 1), conv_bn_relu(cin, pp, 1)),
        )

    def inception_small():
        return nn.Sequential(
            OrderedDict(
                stem=conv_bn_relu(1, 32, 3),
                inception3a=inception(32, 16, 16, 24, 4, 8, 16),
                inception3b=inception(64, 24, 24, 40, 8, 16, 16),
                maxpool3=nn.MaxPool2d(3, 2, 1),
                inception4a=inception(96, 40, 32, 56, 8, 16, 16),
                maxpool4=nn.MaxPool2d(3, 2, 1),
                inception5a=inception(128, 48, 40, 72, 8, 24, 16),
                avgpool=nn.AdaptiveAvgPool2d(1),
                flatten=nn.Flatten(),
                dropout=nn.Dropout(0.2),
                fc=nn.Linear(160, 10),
            )
        )

    def vgg11_small():
        layers, cin = [], 1
        for item in (16, "M", 32, "M", 64, 64, "M", 128, 128, "M", 128, 128):
            if item == "M":
                layers.append(nn.MaxPool2d(2))
            else:
                layers += [nn.Conv2d(cin, item, 3, padding=1, bias=False), nn.BatchNorm2d(item), nn.ReLU()]
                cin = item
        classifier = [nn.Linear(128, 256), nn.ReLU(), nn.Dropout(), nn.Linear(256, 256), nn.ReLU(), nn.Dropout()]
        return nn.Sequential(
            OrderedDict(
                features=nn.Sequential(*layers),
                avgpool=nn.AdaptiveAvgPool2d(1),
                flatten=nn.Flatten(),
                classifier=nn.Sequential(*classifier, nn.Linear(256, 10)),
            )
        )

    def alexnet_small():
        features = nn.Sequential(
            nn.Conv2d(1, 32, 7, 2, 3), nn.ReLU(), nn.MaxPool2d(3, 2),
            nn.Conv2d(32, 64, 5, padding=2), nn.ReLU(), nn.MaxPool2d(3, 2),
            nn.Conv2d(64, 96, 3, padding=1), nn.ReLU(), nn.Conv2d(96, 96, 3, padding=1), nn.ReLU(),
            nn.Conv2d(96, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(3, 2, 1),
        )  # fmt: skip
        classifier = nn.Sequential(
            nn.Dropout(),
            nn.Linear(64, 256),
            nn.ReLU(),
            nn.Dropout(),
            nn.Linear(256, 256),
            nn.ReLU(),
            nn.Linear(256, 10),
        )
        return nn.Sequential(
            OrderedDict(features=features, avgpool=nn.AdaptiveAvgPool2d(1), flatten=nn.Flatten(), classifier=classifier)
        )

    class Bottleneck(nn.Module):
        def __init__(self, cin, planes, stride):
            super().__init__()
            cout = 4 * planes
            self.conv1, self.bn1 = nn.Conv2d(cin, planes, 1, bias=False), nn.BatchNorm2d(planes)
            self.conv2, self.bn2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False), nn.BatchNorm2d(planes)
            self.conv3, self.bn3 = nn.Conv2d(planes, cout, 1, bias=False), nn.BatchNorm2d(cout)
            self.shortcut = None
            if stride != 1 or cin != cout:
                self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

        def forward(self, x):
            h = torch.relu(self.bn1(self.conv1(x)))
            h = torch.relu(self.bn2(self.conv2(h)))
            h = self.bn3(self.conv3(h))
            return torch.relu(h + (x if self.shortcut is None else self.shortcut(x)))

    class ResNet29(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1, self.bn1 = nn.Conv2d(1, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16)
            cin = 16
            for stage, (planes, stride) in enumerate(((16, 1), (32, 2), (64, 2)), start=1):
                blocks = []
                for i in range(3):
                    blocks.append(Bottleneck(cin, planes, stride if i == 0 else 1))
                    cin = 4 * planes
                setattr(self, f"layer{stage}", nn.Sequential(*blocks))
            self.fc = nn.Linear(cin, 10)

        def forward(self, x):
            x = torch.relu(self.bn1(self.conv1(x)))
            x = self.layer3(self.layer2(self.layer1(x)))
            return self.fc(x.mean(dim=(2, 3)))

    return torch, {
        "resnet29_bottleneck": ResNet29,
        "vgg11_small": vgg11_small,
        "alexnet_small": alexnet_small,
        "inception_small": inception_small,
    }


@pytest.mark.parametrize("name", CLASSIC)
def test_state_dicts_load_key_for_key_into_pytorch(name, rng):
    torch, builders = _torch_builders()
    nc.manual_seed(2)
    ours = nc.models.create(name, 1, 10, 28)
    ours.train()
    for _ in range(2):  # real BatchNorm statistics
        ours.forward(rng.standard_normal((8, 1, 28, 28)).astype(np.float32))
    ours.eval()
    theirs = builders[name]().eval()
    theirs.load_state_dict({k: torch.from_numpy(v) for k, v in ours.state_dict().items()}, strict=True)
    x = rng.standard_normal((3, 1, 28, 28)).astype(np.float32)
    with torch.no_grad():
        want = theirs(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(ours.forward(x), want, rtol=1e-4, atol=1e-4)
