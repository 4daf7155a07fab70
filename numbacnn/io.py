"""Old name of :mod:`numbacnn.checkpoint` (kept so existing scripts keep working)."""

from .checkpoint import *  # noqa: F401,F403
from .checkpoint import __all__  # noqa: F401
