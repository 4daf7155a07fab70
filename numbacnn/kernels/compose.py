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


def batchnorm_add_relu(forward_train, forward_eval, backward, add_relu_forward, relu_backward):
    """(batchnorm2d_add_relu_forward_train, _forward_eval, _backward) from one backend's
    batchnorm2d_forward_train, batchnorm2d_forward_eval, batchnorm2d_backward, add_relu_forward and
    relu_backward: the residual join after a block's last BatchNorm, in two kernels."""

    def batchnorm2d_add_relu_forward_train(
        out, save_mean, save_invstd, running_mean, running_var, x, residual, weight, bias, eps, momentum
    ):
        """out = relu(batchnorm2d_forward_train(x) + residual)."""
        forward_train(out, save_mean, save_invstd, running_mean, running_var, x, weight, bias, eps, momentum)
        add_relu_forward(out, out, residual)

    def batchnorm2d_add_relu_forward_eval(
        out, save_mean, save_invstd, x, residual, weight, bias, running_mean, running_var, eps
    ):
        """out = relu(batchnorm2d_forward_eval(x) + residual)."""
        forward_eval(out, save_mean, save_invstd, x, weight, bias, running_mean, running_var, eps)
        add_relu_forward(out, out, residual)

    def batchnorm2d_add_relu_backward(
        dx, dresidual, dweight, dbias, dy, out, x, weight, save_mean, save_invstd, training
    ):
        """The gradients of batchnorm2d_add_relu_forward_*: dresidual = dy where out > 0, then the
        BatchNorm's gradients of that."""
        relu_backward(dresidual, dy, out)
        backward(dx, dweight, dbias, dresidual, x, weight, save_mean, save_invstd, training)

    return batchnorm2d_add_relu_forward_train, batchnorm2d_add_relu_forward_eval, batchnorm2d_add_relu_backward
