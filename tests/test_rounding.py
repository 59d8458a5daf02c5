"""rounding: whole arrays rounded to significant digits equal formatting each float (the cell files' rounding)."""

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from frozenlake_ift import rounding


def _formatted(values, digits):
    return [float(f"{v:.{digits}g}") for v in values]


def _same(a, b) -> bool:
    """Equal floats, NaN equal to NaN, and the same sign of zero."""
    return all(
        (math.isnan(x) and math.isnan(y)) or (x == y and math.copysign(1, x) == math.copysign(1, y))
        for x, y in zip(a, b, strict=True)
    )


@settings(max_examples=300, deadline=None)
@given(st.lists(st.floats(allow_nan=True, allow_infinity=True), min_size=1, max_size=40), st.integers(1, 17))
def test_round_significant_is_formatting_each_float(values, digits):
    got = rounding.round_significant(np.array(values), digits).tolist()
    assert _same(got, _formatted(values, digits))


def test_round_significant_on_ties_powers_of_ten_and_extremes():
    rng = np.random.default_rng(0)
    ties = (rng.integers(1, 10**6, 5000) + 0.5) * 10.0 ** rng.integers(-25, 25, 5000)  # x.5 mantissas: rounding ties
    tens = 10.0 ** np.arange(-30, 31)
    edges = np.concatenate([tens, np.nextafter(tens, 0), np.nextafter(tens, np.inf), -tens])
    extremes = np.array([5e-324, 2.2250738585072014e-308, 1.7976931348623157e308, 0.0, -0.0, 999999.5, 9999995.0])
    for x in (ties, edges, extremes):
        for digits in (1, 6, 15, 16):
            assert _same(rounding.round_significant(x, digits).tolist(), _formatted(x.tolist(), digits))


def test_round_significant_keeps_the_shape_and_as_list_keeps_integers():
    x = np.linspace(0.0, 1.0, 12).reshape(3, 4) / 7
    assert rounding.round_significant(x, 3).shape == (3, 4)
    assert rounding.as_list(x, 3) == [[float(f"{v:.3g}") for v in row] for row in x.tolist()]
    assert rounding.as_list(np.arange(4), 3) == [0, 1, 2, 3]
    assert rounding.as_list(x) == x.tolist()  # no digits: the exact values


def test_round_floats_rounds_only_floats():
    obj = {"a": 0.123456789, "b": [1, "x", 2.0000001, None, True], "c": {"d": [[1.23456789]]}}
    assert rounding.round_floats(obj, 4) == {"a": 0.1235, "b": [1, "x", 2.0, None, True], "c": {"d": [[1.235]]}}
    assert rounding.round_floats(obj, None) is obj
