"""A run's log: one JSON line per epoch (``log.jsonl`` in the run folder), strict JSON."""

import json
import math
import os


def json_row(row):
    """Strict JSON (no bare NaN/Infinity, which strict parsers reject): non-finite floats -> null."""
    clean = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in row.items()}
    return json.dumps(clean, allow_nan=False)


def write_log(path, history):
    """Write ``history`` as log.jsonl atomically (a temporary file renamed into place)."""
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w") as f:
        f.writelines(json_row(row) + "\n" for row in history)
    os.replace(tmp, path)


def append_row(path, row):
    """Add one epoch's row to the log at ``path``."""
    with open(path, "a") as f:
        f.write(json_row(row) + "\n")
