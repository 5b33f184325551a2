"""The one exception type for what a user did wrong (a bad file, flag or value), and the checks of
the numbers users give that raise it.

A ``TinyLLMError``'s message is one line saying what was wrong and what to do. It is a
``ValueError``, so callers that catch ``ValueError`` still catch it. The command line prints it as
one line and exits with status 1; anything else that goes wrong is a bug in tinyllm and surfaces
as one, with its traceback.
"""
import math


class TinyLLMError(ValueError):
    pass


def is_number(value) -> bool:
    """An int or a float, not a bool (which Python counts as an int)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def whole_number(name: str, value, low: int | None = None, high: int | None = None,
                 hint: str = "") -> int:
    """``value`` when it is a whole number in ``low``..``high`` (either bound may be None), else
    a ``TinyLLMError`` naming ``name``; ``hint`` says why the range is what it is."""
    at_least = f" of at least {low}" if low is not None and high is None else ""
    if isinstance(value, bool) or not isinstance(value, int) or (at_least and value < low):
        raise TinyLLMError(f"{name} must be a whole number{at_least}, not {value!r}")
    if (low is not None and value < low) or (high is not None and value > high):
        span = f"{low}..{high}" if low is not None else f"at most {high}"
        raise TinyLLMError(f"{name} {value} is out of range: give {span}"
                           + (f" ({hint})" if hint else ""))
    return value


def finite_number(name: str, value) -> float:
    """``value`` as a float when it is a finite number, else a ``TinyLLMError`` naming ``name``."""
    if not is_number(value) or not math.isfinite(value):
        raise TinyLLMError(f"{name} must be a finite number, not {value!r}")
    return float(value)
