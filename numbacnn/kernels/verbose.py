"""``NUMBACNN_VERBOSE``: what the kernels chose, on stderr, once per layer shape.

1 names the implementation each convolution ran (and a padding done before it); 2 also says why
the earlier entries of the table declined. Any other value, or none, is silent.
"""

import os
import sys

_reported = set()


def level():
    """The verbosity asked for: 0, 1 or 2 (unparsable values count as 0)."""
    try:
        return max(0, int(os.environ.get("NUMBACNN_VERBOSE", "0").strip() or 0))
    except ValueError:
        return 0


def report(key, text):
    """Print ``numbacnn: text`` once per ``key`` when NUMBACNN_VERBOSE is 1 or more."""
    if level() >= 1 and key not in _reported:
        _reported.add(key)
        print(f"numbacnn: {text}", file=sys.stderr)
