"""Models and the name registry the CLI uses."""
from .lenet import lenet5
from .resnet import ResNet, resnet


def _resnet_of_depth(depth):
    def build(in_channels=3, num_classes=10, input_size=32):
        return resnet(depth, in_channels, num_classes)
    build.__doc__ = f"ResNet-{depth} (CIFAR-style, width 16)."
    return build


REGISTRY = {"lenet5": lenet5}
for _depth in (8, 14, 20, 32, 44, 56):
    REGISTRY[f"resnet{_depth}"] = _resnet_of_depth(_depth)


def create(name, in_channels, num_classes, input_size):
    """Build the registered model ``name`` for inputs (in_channels, input_size, input_size)."""
    key = name.lower().replace("-", "").replace("_", "")
    if key not in REGISTRY:
        raise ValueError(f"unknown model {name!r}; available: {', '.join(REGISTRY)}")
    return REGISTRY[key](in_channels=in_channels, num_classes=num_classes, input_size=input_size)


__all__ = ["lenet5", "resnet", "ResNet", "REGISTRY", "create"]
