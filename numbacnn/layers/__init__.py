"""Layers with hand-written forward and backward; PyTorch names, arguments and weight shapes."""

from .activation import ELU, LeakyReLU, ReLU, Sigmoid, Softmax, Tanh
from .channelwise import Concat, Maxout, PReLU
from .containers import BasicBlock, Bottleneck, Sequential
from .conv import Conv2d
from .dropout import Dropout, Dropout2d
from .linear import Linear
from .module import Module
from .norm import BatchNorm2d
from .pool import AdaptiveAvgPool2d, AvgPool2d, MaxPool2d
from .reshape import Flatten

__all__ = [
    "Module",
    "Conv2d",
    "MaxPool2d",
    "AvgPool2d",
    "AdaptiveAvgPool2d",
    "Linear",
    "ReLU",
    "LeakyReLU",
    "ELU",
    "Sigmoid",
    "Tanh",
    "Softmax",
    "BatchNorm2d",
    "Dropout",
    "Dropout2d",
    "PReLU",
    "Maxout",
    "Concat",
    "Flatten",
    "Sequential",
    "BasicBlock",
    "Bottleneck",
]
