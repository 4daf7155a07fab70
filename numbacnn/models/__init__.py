"""Models and the name registry the CLI uses."""

from .lenet import lenet5
from .resnet import ResNet, resnet


def _resnet_of_depth(depth):
    def build(in_channels=3, num_classes=10, input_size=32):
        return resnet(depth, in_channels, num_classes)

    build.__doc__ = f"ResNet-{depth} (CIFAR-style, width 16)."
    return build


REGISTRY = {"lenet5": lenet5}
# Which defaults (epochs, optimizer, augmentation, input shape) a registered model trains with.
FAMILIES = {"lenet5": "lenet"}
for _depth in (8, 14, 20, 32, 44, 56):
    REGISTRY[f"resnet{_depth}"] = _resnet_of_depth(_depth)
    FAMILIES[f"resnet{_depth}"] = "resnet"


def _key(name):
    key = str(name).lower().replace("-", "").replace("_", "")
    if key not in REGISTRY:
        raise ValueError(f"unknown model {name!r}; available: {', '.join(REGISTRY)}")
    return key


def family(name):
    """The family ("lenet" or "resnet") of the registered model ``name``; ValueError if unknown."""
    return FAMILIES[_key(name)]


def create(name, in_channels, num_classes, input_size):
    """Build the registered model ``name`` for inputs (in_channels, input_size, input_size)."""
    return REGISTRY[_key(name)](in_channels=in_channels, num_classes=num_classes, input_size=input_size)


__all__ = ["lenet5", "resnet", "ResNet", "REGISTRY", "FAMILIES", "create", "family"]
