"""The exceptions numbacnn raises for problems a user can fix. A leaf module: it imports nothing
from the package, so any layer (kernels included) can raise these without an import cycle.

The command line maps each to an exit code (README, "Exit codes").
"""


class DeviceError(RuntimeError):
    """A device was asked for that this machine cannot provide, or arrays sit on the wrong one."""


class DataError(RuntimeError):
    """Missing, truncated or corrupt data set files, with a message that says how to fix it."""


class CheckpointError(RuntimeError):
    """A checkpoint is missing, unreadable, corrupt or does not fit the model."""


class TrainingDiverged(RuntimeError):
    """The loss (or a parameter) became NaN or infinite."""


class RunFolderError(RuntimeError):
    """A run folder that cannot be used: taken by another run, locked by a live one, or unwritable."""


class ImageError(ValueError):
    """An image file that cannot be read: unsupported, truncated, corrupt or of the wrong size."""


__all__ = ["CheckpointError", "DataError", "DeviceError", "ImageError", "RunFolderError", "TrainingDiverged"]
