"""Fused kernels written as compositions of a backend's own kernels, where only the CPU fuses them
into one pass (CUDA and the NumPy twins): one definition, with the CPU's signatures."""


def batchnorm_relu(forward_train, forward_eval, backward, relu_forward, relu_backward, masked_dy):
    """(batchnorm2d_relu_forward_train, _forward_eval, _backward) from one backend's
    batchnorm2d_forward_train, batchnorm2d_forward_eval, batchnorm2d_backward, relu_forward and
    relu_backward; ``masked_dy(shape, dtype)`` gives the scratch array for the gradient that
    passes the ReLU."""

    def batchnorm2d_relu_forward_train(
        out, save_mean, save_invstd, running_mean, running_var, x, weight, bias, eps, momentum
    ):
        """out = relu(batchnorm2d_forward_train(x))."""
        forward_train(out, save_mean, save_invstd, running_mean, running_var, x, weight, bias, eps, momentum)
        relu_forward(out, out)

    def batchnorm2d_relu_forward_eval(out, save_mean, save_invstd, x, weight, bias, running_mean, running_var, eps):
        """out = relu(batchnorm2d_forward_eval(x))."""
        forward_eval(out, save_mean, save_invstd, x, weight, bias, running_mean, running_var, eps)
        relu_forward(out, out)

    def batchnorm2d_relu_backward(dx, dweight, dbias, dy, out, x, weight, save_mean, save_invstd, training):
        """The gradients of batchnorm2d_relu_forward_*: dy, the gradient of ``out``, passes where
        out > 0."""
        masked = masked_dy(dy.shape, dy.dtype)
        relu_backward(masked, dy, out)
        backward(dx, dweight, dbias, masked, x, weight, save_mean, save_invstd, training)

    return batchnorm2d_relu_forward_train, batchnorm2d_relu_forward_eval, batchnorm2d_relu_backward
