"""Hypothesis strategies shared by the test modules."""

from hypothesis import assume
from hypothesis import strategies as st

from frozenlake_ift.lakes import validate_desc


@st.composite
def lake_descs(draw, max_size=5):
    """Valid maps of 1..max_size rows and columns, about a quarter holes."""
    nrow = draw(st.integers(1, max_size))
    ncol = draw(st.integers(2 if nrow == 1 else 1, max_size))
    tiles = draw(st.lists(st.sampled_from("FFFH"), min_size=nrow * ncol, max_size=nrow * ncol))
    s, g = draw(st.lists(st.integers(0, nrow * ncol - 1), min_size=2, max_size=2, unique=True))
    tiles[s], tiles[g] = "S", "G"
    desc = ["".join(tiles[r * ncol:(r + 1) * ncol]) for r in range(nrow)]
    try:
        validate_desc(desc)
    except ValueError:
        assume(False)
    return desc
