"""A convolution layer as the dispatch table sees it: shapes and hyper-parameters, nothing else."""

from typing import NamedTuple

from ...shapes import conv2d_output_size


class Geometry(NamedTuple):
    """x (N, C, H, W), w (K, C/groups, KH, KW); pairs (h, w) for stride, padding and dilation;
    ``dtype`` x's (a numpy dtype); ``batch`` N (0: not given)."""

    channels: int
    height: int
    width: int
    k_out: int
    kh: int
    kw: int
    stride: tuple
    padding: tuple
    dilation: tuple
    groups: int
    dtype: object
    batch: int = 0

    @classmethod
    def of(cls, x, w, stride, padding, dilation, groups):
        n_batch, channels, height, width = x.shape
        return cls(
            channels, height, width, w.shape[0], w.shape[2], w.shape[3],
            tuple(stride), tuple(padding), tuple(dilation), int(groups), x.dtype, n_batch,
        )  # fmt: skip

    @property
    def out_hw(self):
        """(OH, OW): the output plane."""
        return (
            conv2d_output_size(self.height, self.kh, self.stride[0], self.padding[0], self.dilation[0]),
            conv2d_output_size(self.width, self.kw, self.stride[1], self.padding[1], self.dilation[1]),
        )

    @property
    def positions(self):
        """Output positions per plane."""
        oh, ow = self.out_hw
        return max(oh, 0) * max(ow, 0)

    def describe(self):
        samples = f"{self.batch}, " if self.batch else ""  # the batch, where the choice saw it
        return (
            f"x ({samples}{self.channels}, {self.height}, {self.width}), "
            f"w ({self.k_out}, {self.channels // self.groups}, {self.kh}, {self.kw}), "
            f"stride {self.stride}, padding {self.padding}, dilation {self.dilation}, "
            f"groups {self.groups}, {self.dtype}"
        )
