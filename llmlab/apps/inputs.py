"""What the apps accept as texts and labels from Python.

A notebook hands over lists, tuples, numpy arrays, pandas Series (any index), generators; labels
are often integers, and an empty cell of a table is None or NaN. These helpers turn each into
a plain list of str once, at the app's door, and refuse what cannot be meant (one string where
a list of texts is expected, a number where a text is expected) with a message that says what
to give instead. Tested in tests/apps/test_inputs.py.
"""

import math
from collections.abc import Mapping
from numbers import Integral, Real

from llmlab.errors import LlmlabError


def _missing(item) -> bool:
    """None, NaN or pandas' NA: an empty cell."""
    if item is None or type(item).__name__ == "NAType":
        return True
    return isinstance(item, Real) and not isinstance(item, Integral) and math.isnan(item)


def _items(values, name: str) -> list:
    if isinstance(values, (str, bytes)):
        raise LlmlabError(f"{name} should be a list of texts, got one {type(values).__name__}: wrap it in a list")
    if isinstance(values, Mapping) or getattr(values, "ndim", 1) != 1:  # a dict, a DataFrame, a 2-D array
        raise LlmlabError(f"{name} should be one list or column of texts, not a {type(values).__name__}"
                          + (f" of {values.ndim} dimensions" if hasattr(values, "ndim") else ""))
    try:
        return list(values)  # a pandas Series gives its values, whatever its index
    except TypeError:
        raise LlmlabError(f"{name} should be a list of texts, not {type(values).__name__}") from None


def text_list(values, name: str = "texts") -> list[str]:
    """``values`` as a list of str; None and NaN (empty cells) become ""."""
    out = _items(values, name)
    for i, item in enumerate(out):
        if isinstance(item, str):
            out[i] = str(item)  # numpy.str_ -> str
        elif _missing(item):
            out[i] = ""
        else:
            raise LlmlabError(f"{name}[{i}] is {type(item).__name__} ({item!r:.40}), not a text")
    return out


def label_list(values, name: str = "labels") -> list[str]:
    """``values`` as a list of label names: integers (also 1.0 from a column with gaps) as their
    digits, surrounding spaces removed; None and NaN (no label) become ""."""
    out = _items(values, name)
    for i, item in enumerate(out):
        if isinstance(item, str):
            out[i] = str(item).strip()
        elif _missing(item):
            out[i] = ""
        elif isinstance(item, bool) or getattr(getattr(item, "dtype", None), "kind", "") == "b":  # or numpy's
            out[i] = str(bool(item))
        elif isinstance(item, Integral):
            out[i] = str(int(item))
        elif isinstance(item, Real) and float(item).is_integer():
            out[i] = str(int(item))
        elif isinstance(item, Real):
            out[i] = str(item)  # numpy's float32 0.1 is "0.1" too
        else:
            raise LlmlabError(f"{name}[{i}] is {type(item).__name__} ({item!r:.40}), not a label")
    return out


def same_length(a: list, b: list, a_name: str, b_name: str) -> None:
    if len(a) != len(b):
        raise LlmlabError(f"{len(a)} {a_name} but {len(b)} {b_name}: give one for each")
