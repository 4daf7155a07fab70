"""Old name of :mod:`numbacnn.config` (kept so existing scripts keep working)."""

from .config import *  # noqa: F401,F403
from .config import __all__  # noqa: F401
