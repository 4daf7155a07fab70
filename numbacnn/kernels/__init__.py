"""The kernel contract shared by ``kernels.cpu`` (``@njit``) and ``kernels.cuda`` (``@cuda.jit``).

Every public kernel follows the same rules, on both backends:

* Layout NCHW, C-contiguous; float32 by default, float64 also works (gradient checks use it).
* Kernels never allocate: outputs come first in the signature, then inputs, then hyper-parameters,
  e.g. ``conv2d_forward(out, x, w, b, stride, padding, dilation, groups)``. Spatial hyper-parameters
  are ``(h, w)`` tuples of ints. Scratch memory (im2col columns, GEMM temporaries) comes from a
  per-process workspace that grows to the largest request and is then reused.
* Parameter gradients accumulate (``+=``; ``zero_grad`` zeroes them); activation gradients
  overwrite (``=``).
* ``kernels.cpu`` and ``kernels.cuda`` export the same names with the same signatures
  (``tests/test_contract.py`` asserts it). A missing CUDA op is an error, never a CPU fallback.
* Optional arrays (a conv without bias, a first layer that needs no input gradient, a frozen
  weight that needs no gradient) are passed as ``None``; the work that would fill them is skipped.

``KERNELS_BY_MODULE`` lists the public names by module and ``KERNEL_NAMES`` all of them; each
backend exports exactly these, bound by ``bind_kernels``.
"""

# Every public kernel, by the module of each backend (cpu/, cuda/, npy/) that defines it.
KERNELS_BY_MODULE = {
    "batch": ("gather_batch",),
    "conv": ("conv2d_forward", "conv2d_backward"),
    "pool": (
        "maxpool2d_forward",
        "maxpool2d_backward",
        "avgpool2d_forward",
        "avgpool2d_backward",
        "global_avgpool2d_forward",
        "global_avgpool2d_backward",
        "adaptive_avgpool2d_forward",
        "adaptive_avgpool2d_backward",
    ),
    "pad": ("pad2d_forward", "pad2d_backward"),
    "channels": (
        "concat_channels_forward",
        "concat_channels_backward",
        "scale_channels",
        "maxout_forward",
        "maxout_backward",
        "prelu_forward",
        "prelu_backward",
    ),
    "linear": ("linear_forward", "linear_backward"),
    "elementwise": (
        "relu_forward",
        "relu_backward",
        "leaky_relu_forward",
        "leaky_relu_backward",
        "elu_forward",
        "elu_backward",
        "sigmoid_forward",
        "sigmoid_backward",
        "tanh_forward",
        "tanh_backward",
        "add_forward",
        "add_relu_forward",
        "add_relu_backward",
        "dropout_forward",
        "dropout_backward",
        "copy",
        "fill",
    ),
    "norm": (
        "batchnorm2d_forward_train",
        "batchnorm2d_forward_eval",
        "batchnorm2d_backward",
        "batchnorm2d_moments",
        "batchnorm2d_backward_synced",
        "batchnorm2d_relu_forward_train",
        "batchnorm2d_relu_forward_eval",
        "batchnorm2d_relu_backward",
        "batchnorm2d_add_relu_forward_train",
        "batchnorm2d_add_relu_forward_eval",
        "batchnorm2d_add_relu_backward",
    ),
    "loss": ("softmax_cross_entropy_forward", "softmax_cross_entropy_backward", "mse_forward", "mse_backward"),
    "softmax": ("softmax_forward", "softmax_backward"),
    "optim": ("sgd_step", "adam_step", "ema_update"),
}
KERNEL_NAMES = tuple(name for names in KERNELS_BY_MODULE.values() for name in names)

# Integer arguments that change from call to call (a dropout seed, an optimizer's step count) and
# never choose a kernel's compiled code. Every other integer argument may (quick start keys calls
# by those values).
PER_CALL_SCALARS = ("seed", "step", "erase_seed")


def bind_kernels(namespace, package):
    """Import every kernel of KERNELS_BY_MODULE from ``package``'s modules into ``namespace`` (a
    backend's globals); the backend's ``__all__`` (its return value) is exactly KERNEL_NAMES."""
    import importlib

    for module, names in KERNELS_BY_MODULE.items():
        source = importlib.import_module(f"{package}.{module}")
        for name in names:
            namespace[name] = getattr(source, name)
    return list(KERNEL_NAMES)


__all__ = ["KERNELS_BY_MODULE", "KERNEL_NAMES", "PER_CALL_SCALARS", "bind_kernels"]
