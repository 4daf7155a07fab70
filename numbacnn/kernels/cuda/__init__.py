"""CUDA kernels (``@cuda.jit`` + host launchers): the twins of ``kernels.cpu``, same names and
signatures (see ``numbacnn.kernels`` for the contract). Every array argument must be a CUDA device
array; a host array is an error, never a silent copy.
"""

from .batch import gather_batch
from .channels import (
    concat_channels_backward,
    concat_channels_forward,
    maxout_backward,
    maxout_forward,
    prelu_backward,
    prelu_forward,
    scale_channels,
)
from .conv import conv2d_backward, conv2d_forward
from .elementwise import (
    add_forward,
    add_relu_backward,
    add_relu_forward,
    copy,
    dropout_backward,
    dropout_forward,
    elu_backward,
    elu_forward,
    fill,
    leaky_relu_backward,
    leaky_relu_forward,
    relu_backward,
    relu_forward,
    sigmoid_backward,
    sigmoid_forward,
    tanh_backward,
    tanh_forward,
)
from .linear import linear_backward, linear_forward
from .loss import mse_backward, mse_forward, softmax_cross_entropy_backward, softmax_cross_entropy_forward
from .norm import (
    batchnorm2d_backward,
    batchnorm2d_backward_synced,
    batchnorm2d_forward_eval,
    batchnorm2d_forward_train,
    batchnorm2d_moments,
    batchnorm2d_relu_backward,
    batchnorm2d_relu_forward_eval,
    batchnorm2d_relu_forward_train,
)
from .optim import adam_step, sgd_step
from .pad import pad2d_backward, pad2d_forward
from .pool import (
    adaptive_avgpool2d_backward,
    adaptive_avgpool2d_forward,
    avgpool2d_backward,
    avgpool2d_forward,
    global_avgpool2d_backward,
    global_avgpool2d_forward,
    maxpool2d_backward,
    maxpool2d_forward,
)
from .softmax import softmax_backward, softmax_forward

__all__ = [
    "gather_batch",
    "concat_channels_backward",
    "concat_channels_forward",
    "maxout_backward",
    "maxout_forward",
    "prelu_backward",
    "prelu_forward",
    "scale_channels",
    "pad2d_backward",
    "pad2d_forward",
    "adaptive_avgpool2d_backward",
    "adaptive_avgpool2d_forward",
    "adam_step",
    "add_forward",
    "add_relu_backward",
    "add_relu_forward",
    "avgpool2d_backward",
    "avgpool2d_forward",
    "batchnorm2d_backward",
    "batchnorm2d_backward_synced",
    "batchnorm2d_forward_eval",
    "batchnorm2d_forward_train",
    "batchnorm2d_moments",
    "batchnorm2d_relu_backward",
    "batchnorm2d_relu_forward_eval",
    "batchnorm2d_relu_forward_train",
    "conv2d_backward",
    "conv2d_forward",
    "copy",
    "dropout_backward",
    "dropout_forward",
    "elu_backward",
    "elu_forward",
    "fill",
    "global_avgpool2d_backward",
    "global_avgpool2d_forward",
    "leaky_relu_backward",
    "leaky_relu_forward",
    "linear_backward",
    "linear_forward",
    "maxpool2d_backward",
    "maxpool2d_forward",
    "mse_backward",
    "mse_forward",
    "relu_backward",
    "relu_forward",
    "sgd_step",
    "sigmoid_backward",
    "sigmoid_forward",
    "softmax_backward",
    "softmax_cross_entropy_backward",
    "softmax_cross_entropy_forward",
    "softmax_forward",
    "tanh_backward",
    "tanh_forward",
]
