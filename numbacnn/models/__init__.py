"""Models and the name registry the CLI uses."""

from .alexnet import alexnet_small
from .inception import inception_small
from .lenet import lenet5
from .resnet import ResNet, resnet
from .vgg import vgg11_small


def _resnet_of_depth(depth):
    def build(in_channels=3, num_classes=10, input_size=32):
        return resnet(depth, in_channels, num_classes)

    build.__doc__ = f"ResNet-{depth} (CIFAR-style, width 16)."
    return build


def _bottleneck_resnet_of_depth(depth):
    def build(in_channels=3, num_classes=10, input_size=32):
        return resnet(depth, in_channels, num_classes, block="bottleneck")

    build.__doc__ = f"ResNet-{depth} with Bottleneck blocks (CIFAR-style, width 16, 4x expansion)."
    return build


def _sized(builder):
    def build(in_channels=3, num_classes=10, input_size=32):
        return builder(in_channels=in_channels, num_classes=num_classes, input_size=input_size)

    build.__doc__ = builder.__doc__
    return build


REGISTRY = {"lenet5": lenet5}
# Which defaults (epochs, optimizer, augmentation, input shape) a registered model trains with.
FAMILIES = {"lenet5": "lenet"}
for _depth in (8, 14, 20, 32, 44, 56):
    REGISTRY[f"resnet{_depth}"] = _resnet_of_depth(_depth)
    FAMILIES[f"resnet{_depth}"] = "resnet"
for _depth in (29, 56):
    REGISTRY[f"resnet{_depth}_bottleneck"] = _bottleneck_resnet_of_depth(_depth)
    FAMILIES[f"resnet{_depth}_bottleneck"] = "resnet"
for _name, _builder, _family in (
    ("vgg11_small", vgg11_small, "vgg"),
    ("alexnet_small", alexnet_small, "alexnet"),
    ("inception_small", inception_small, "inception"),
):
    REGISTRY[_name] = _sized(_builder)
    FAMILIES[_name] = _family


def _normal(name):
    return str(name).lower().replace("-", "").replace("_", "")


def _key(name):
    """The registry key for ``name``, case, "-" and "_" aside (resnet-20, ResNet20, vgg11-small)."""
    by_normal = {_normal(k): k for k in REGISTRY}
    key = by_normal.get(_normal(name))
    if key is None:
        raise ValueError(f"unknown model {name!r}; available: {', '.join(REGISTRY)}")
    return key


def family(name):
    """The family ("lenet", "resnet", "vgg", "alexnet", "inception") of the registered model
    ``name`` (it chooses the training defaults); ValueError if unknown."""
    return FAMILIES[_key(name)]


def usual_input_size(name):
    """The side of the images ``name`` is usually trained on: 28 for LeNet-5, 32 for the others."""
    return 28 if _key(name) == "lenet5" else 32


def create(name, in_channels, num_classes, input_size):
    """Build the registered model ``name`` for inputs (in_channels, input_size, input_size)."""
    return REGISTRY[_key(name)](in_channels=in_channels, num_classes=num_classes, input_size=input_size)


__all__ = [
    "alexnet_small",
    "inception_small",
    "lenet5",
    "resnet",
    "ResNet",
    "vgg11_small",
    "REGISTRY",
    "usual_input_size",
    "FAMILIES",
    "create",
    "family",
]
