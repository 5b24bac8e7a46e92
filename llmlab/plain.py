"""Results as plain JSON values: what ``to_dict()`` of every app result returns.

`llmlab <app> --format json` prints these, and the server will send them as they are, so a
result reads the same whichever way it was asked for. numpy numbers and arrays become Python
numbers and lists, tuples and paths lists and strings, NaN and infinities None (JSON has no
such numbers; ``json.dumps(..., allow_nan=False)`` accepts every result).
Tested in tests/apps/test_plain.py.
"""

import math
from numbers import Integral, Real
from pathlib import PurePath


def plain(value, default=None):
    """``value`` with every number, list and mapping in it as plain JSON values; anything else is
    ``default(thing)`` when ``default`` is given, else a TypeError."""
    if value is None or isinstance(value, (str, bool)):
        return value
    if isinstance(value, Integral):
        return int(value)
    if isinstance(value, Real):
        value = float(value)
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): plain(v, default) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v, default) for v in value]
    if isinstance(value, PurePath):
        return str(value)
    if hasattr(value, "tolist"):  # numpy arrays and scalars (np.bool_ too), torch tensors
        return plain(value.tolist(), default)
    if default is not None:
        return plain(default(value))
    raise TypeError(f"no plain JSON form for {type(value).__name__}")


def rounded(x: float, places: int = 4) -> float | None:
    """``x`` rounded for reading (scores, confidences), None when it is not a finite number."""
    return round(float(x), places) if math.isfinite(x) else None
