"""Slider cells: a drawing function with one ipywidgets control per argument, or one line on how to get them."""

from __future__ import annotations

import inspect
from collections.abc import Callable

NO_WIDGETS = "sliders need ipywidgets and a live kernel: pip install 'frozenlake_ift[notebooks]'"


def _control(name: str, spec, default):
    import ipywidgets

    if isinstance(spec, (list, tuple)) and spec and all(isinstance(x, str) for x in spec):
        return ipywidgets.Dropdown(options=list(spec), value=default if default in spec else spec[0], description=name)
    if isinstance(spec, tuple) and len(spec) == 3 and all(isinstance(x, (int, float)) for x in spec):
        lo, hi, step = spec
        value = default if isinstance(default, (int, float)) else lo
        return ipywidgets.FloatSlider(
            min=lo, max=hi, step=step, value=value, description=name, continuous_update=False, readout_format=".2f"
        )
    raise ValueError(
        f"control {name!r}: give (min, max, step) for a slider or a list of strings for a menu, got {spec!r}"
    )


def sliders(fn: Callable, **controls):
    """Show ``fn`` with one control per keyword: (min, max, step) makes a slider, a list of strings a menu.

    The start values are ``fn``'s defaults, and ``fn`` runs again each time a control is released.
    Needs ipywidgets (the ``notebooks`` extra) and a live kernel; without ipywidgets it prints one line
    (``NO_WIDGETS``) and returns None, so the cell before it, drawn once without sliders, is the static
    version. Returns the ipywidgets.interactive widget."""
    params = inspect.signature(fn).parameters
    unknown = sorted(set(controls) - set(params))
    if unknown:
        raise ValueError(f"controls {unknown} are not arguments of {getattr(fn, '__name__', fn)!r}: {list(params)}")
    try:
        import ipywidgets
    except ImportError:
        print(NO_WIDGETS)
        return None
    from IPython.display import display

    widgets = {k: _control(k, spec, params[k].default) for k, spec in controls.items()}
    out = ipywidgets.interactive(fn, **widgets)
    display(out)
    return out
