"""Floats rounded to a number of significant decimal digits, as a file keeps them (the sweep's cell files).

``round_significant`` rounds whole arrays at numpy speed, with exactly the result of formatting each
element (``float(f"{x:.{digits}g}")``); ``round_floats`` rounds every float inside a JSON-ready object.
"""

from __future__ import annotations

import numpy as np


def round_significant(a, digits: int) -> np.ndarray:
    """Each element as ``float(f"{x:.{digits}g}")`` (the nearest float to x rounded to ``digits`` significant
    decimal digits), without formatting a string per element. Shape: any -> the same, float64.

    Exact, by the classic fast path of decimal-to-float conversion. With k = floor(log10|x|) - digits + 1
    and |k| <= 22, 10^|k| is an exact float; m = x / 10^k is one correctly rounded operation (for
    digits <= 9 its error is under 2e-7), so rint(m) is the rounded mantissa unless m lies within 1e-6 of
    a tie; and rint(m) * 10^k (or rint(m) / 10^-k) is one correctly rounded operation on exact operands:
    the nearest float to that decimal, as ``float(str)`` gives. Elements off that path (near ties,
    |k| > 22, a misjudged exponent, or digits > 9) are formatted one by one; zeros, infinities and NaN
    pass through.
    """
    x = np.asarray(a, dtype=np.float64)
    out = x.copy()
    mag = np.abs(x)
    ok = np.isfinite(x) & (mag > 0) & (digits <= 9)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        k = np.floor(np.log10(np.where(ok, mag, 1.0))) - (digits - 1)  # exponent of the last kept digit
        ok &= np.abs(k) <= 22
        k = np.where(ok, k, 0.0)
        scale = 10.0 ** np.abs(k)  # exact for |k| <= 22
        m = np.where(k >= 0, mag / scale, mag * scale)  # the mantissa, in [10^(digits-1), 10^digits)
        r = np.rint(m)
        ok &= (m >= 10.0 ** (digits - 1)) & (m < 10.0**digits) & (np.abs(m - np.floor(m) - 0.5) > 1e-6)
        y = np.where(k >= 0, r * scale, r / scale)
    out[ok] = np.copysign(y[ok], x[ok])
    slow = np.isfinite(x) & (mag > 0) & ~ok
    if slow.any():
        fmt = f"{{:.{digits}g}}".format
        out[slow] = [float(fmt(v)) for v in x[slow].tolist()]
    return out


def as_list(a, digits: int | None = None) -> list:
    """An array as nested lists (``tolist``), its floats rounded to ``digits`` significant digits if given."""
    a = np.asarray(a)
    if digits is not None and a.dtype.kind == "f":
        a = round_significant(a, digits)
    return a.tolist()


def round_floats(obj, digits: int | None):
    """Every float inside dicts and lists rounded to ``digits`` significant digits;
    other leaves as they are. ``digits`` None: obj unchanged."""
    if digits is None:
        return obj
    if isinstance(obj, float):
        return float(f"{obj:.{digits}g}")
    if isinstance(obj, dict):
        return {k: round_floats(v, digits) for k, v in obj.items()}
    if isinstance(obj, list):
        return [round_floats(v, digits) for v in obj]
    return obj
