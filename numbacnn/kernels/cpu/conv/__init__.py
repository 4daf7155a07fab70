"""2-D convolution on the CPU, by strategy:

* ``dispatch.py``: the table of implementations and the choice between them (``conv2d_forward``,
  ``conv2d_backward``);
* ``pointwise.py``: 1x1 layers as matrix products on the NCHW planes (also strided: "subsample");
* ``direct_positions.py`` (+ ``direct_positions_weight_grad.py``): direct convolution vectorised
  over output positions, stride 1;
* ``direct_samples.py`` (+ ``direct_samples_blocks.py``): direct convolution vectorised over samples
  (blocks of LANES), stride 1;
* ``direct_channels.py`` (+ ``direct_channels_plans.py``): direct convolution vectorised over output
  channels, any stride, padding, dilation and groups;
* ``winograd_channels.py`` (+ ``winograd_channels_input.py``, ``winograd_channels_weight_grad.py``):
  Winograd F(2x2, 3x3) vectorised over channels, all three passes of stride-1 3x3 layers with
  channels in whole blocks of 2 LANES; ``winograd.py``: the same vectorised over tiles (forced only);
* ``grids.py``: planes on flat zero-padded grids and weights packed in blocks, for the direct ones;
  ``bias.py``: the bias gradient; ``geometry.py``: a layer as the table sees it.

The register tiles they run on are in ``kernels/cpu/microkernel.py`` (GEMM) and
``kernels/cpu/conv_tiles.py`` (the direct convolutions'), ``kernels/cpu/sample_tiles.py``
(direct_samples').
"""

from .dispatch import conv2d_backward, conv2d_forward

__all__ = ["conv2d_backward", "conv2d_forward"]
