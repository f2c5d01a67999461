"""argparse ``type=`` functions for numeric options, so a bad value is refused when it is parsed, with
the option's name, instead of failing deep inside a run (a NaN stability period once raised a
ValueError after the troubleshooting VM had booted)."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable


def seconds(low: float, high: float, *, low_included: bool = True) -> Callable[[str], float]:
    """A type that accepts a finite number of seconds in ``[low, high]`` (``(low, high]`` when
    ``low_included`` is false). argparse prefixes the error with ``argument --OPTION:``."""
    bounds = f"between {low:g} and {high:g}" if low_included else f"more than {low:g} and at most {high:g}"

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        inside = (low <= value if low_included else low < value) and value <= high
        if not (math.isfinite(value) and inside):  # NaN compares false with everything: checked first
            raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds {bounds}")
        return value

    return parse
