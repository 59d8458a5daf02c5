"""Drawing building blocks shared by the study's figures (``plots``) and the teaching notebooks.

    style          TILE_COLORS, TILE_NAMES, ROUTE_STYLE, ACTION_DIRS, method_color / method_marker (from
                   each method's registry record), pretty (metric labels in mathtext), pyplot (Agg)
    arrow_geometry(action, p)          how the arrow of pi(a|s) is drawn from a tile centre
    show(fig)                          a figure inline as a PNG (notebooks)
    gif_bytes / show_animation         an animated GIF drawn frame by frame on one figure, inline (notebooks)
    draw_arrows / draw_lake / draw_matrix / draw_series     a lake with values, arrows, a path and a
                   marked tile; a labelled matrix; mean-and-CI curves of any per-member series

So no notebook carries its own copy of a drawing routine. matplotlib is imported inside the
functions, never at package import time. Grid conventions as in gymnasium: state = row * ncol +
col; actions 0=left, 1=down, 2=right, 3=up.
"""

from __future__ import annotations

import gc
import io
import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import metrics as _metrics
from .actions import DELTAS
from .methods import get_method

ROUTE_STYLE: dict[str, dict[str, Any]] = {
    "chosen": dict(color="#D55E00", ls="-"),
    "rejected": dict(color="#111111", ls=(0, (4, 2))),
}
TILE_COLORS = {"F": "#DCEBF7", "H": "#2F4858", "S": "#B9E3A8", "G": "#FFD166"}
TILE_NAMES = {"S": "start", "F": "frozen", "H": "hole", "G": "goal"}
ACTION_DIRS = np.array([(dcol, drow) for drow, dcol in DELTAS], dtype=float)  # (dx, dy) on screen, y down
_GREEK = [
    ("T_pi(s'|s)", r"$T_\pi(s'|s)$"),
    ("pi(a|s)", r"$\pi(a|s)$"),
    ("pi_theta*", r"$\pi_{\theta^*}$"),
    ("pi_theta", r"$\pi_\theta$"),
    ("theta*", r"$\theta^*$"),
    ("theta_0", r"$\theta_0$"),
    ("theta", r"$\theta$"),
    ("pi*", r"$\pi^*$"),
    ("rho0", r"$\rho_0$"),
]


def pyplot():
    """matplotlib.pyplot on the Agg backend (imported on first use, never at package import)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def pretty(label: str) -> str:
    """A METRICS label with Greek letters in mathtext: 'KL(pi* || pi_theta)' -> 'KL($\\pi^*$ || $\\pi_\\theta$)'."""
    pattern = "|".join(re.escape(k) for k, _ in _GREEK)
    return re.sub(pattern, lambda m: dict(_GREEK)[m.group(0)], label)


def method_color(method: str) -> str:
    """The method's colour from its registry record, so every figure uses the same one (grey if unknown)."""
    try:
        return get_method(method).color
    except ValueError:
        return "#777777"


def method_marker(method: str) -> str:
    """The method's marker from its registry record (a circle if unknown)."""
    try:
        return get_method(method).marker
    except ValueError:
        return "o"


NOTEBOOK_DPI = 80  # inline PNGs: sharp enough on screen, a few tens of kB each


@dataclass(frozen=True)
class ArrowGeometry:
    """How an action of probability p is drawn from a tile centre: offset (dx, dy) on screen (y down),
    shaft width, head width and length, and opacity. Longer, thicker and darker = likelier."""

    dx: float
    dy: float
    width: float
    head_width: float
    head_length: float
    alpha: float


def arrow_geometry(action: int, p: float) -> ArrowGeometry:
    """The arrow of ``action`` (0=left, 1=down, 2=right, 3=up) drawn with probability ``p`` in [0, 1]."""
    if not 0 <= int(action) < len(ACTION_DIRS):
        raise ValueError(f"action must be in 0..{len(ACTION_DIRS) - 1}, got {action!r}")
    if not 0.0 <= float(p) <= 1.0 + 1e-9:
        raise ValueError(f"p must be a probability in [0, 1], got {p!r}")
    p = min(float(p), 1.0)
    dx, dy = ACTION_DIRS[int(action)] * (0.08 + 0.32 * p)
    return ArrowGeometry(float(dx), float(dy), 0.015 + 0.03 * p, 0.08 + 0.1 * p, 0.06 + 0.06 * p, 0.35 + 0.65 * p)


def show(fig, dpi: int = NOTEBOOK_DPI) -> None:
    """Display ``fig`` inline as a PNG (the same under any backend) and close it. Needs IPython."""
    from IPython.display import Image, display

    plt = pyplot()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    display(Image(buf.getvalue()))


def gif_bytes(
    draw_frame,
    n_frames: int,
    *,
    ncols: int = 1,
    figsize: tuple[float, float] = (4.0, 4.0),
    seconds_per_frame: float = 0.6,
    dpi: int = 72,
    colors: int = 64,
) -> bytes:
    """A looping animated GIF of ``n_frames`` frames: ``draw_frame(axes, k)`` draws frame k on ``ncols``
    cleared axes of one figure (drawn once, redrawn per frame: much faster than a figure per frame).

    Each frame keeps ``colors`` colours, so a small lake animation costs a few kB a frame; the last
    frame is held three times longer."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from PIL import Image

    if n_frames < 1:
        raise ValueError(f"an animation needs at least one frame, got n_frames={n_frames}")
    plt = pyplot()
    fig, axes = plt.subplots(1, ncols, figsize=figsize, dpi=dpi, squeeze=False)
    fig.subplots_adjust(left=0.02, right=0.98, bottom=0.02, top=0.88, wspace=0.06)
    canvas = FigureCanvasAgg(fig)  # draw in memory (no PNG round trip), whatever the backend
    frames = []
    collecting = gc.isenabled()
    gc.disable()  # matplotlib's many short-lived cyclic objects make the collector half of the drawing time
    try:
        for k in range(n_frames):
            for ax in axes[0]:
                ax.clear()
            draw_frame(list(axes[0]), k)
            canvas.draw()
            rgba = np.asarray(canvas.buffer_rgba())  # (height, width, 4)
            frames.append(Image.fromarray(rgba[..., :3].copy()).quantize(colors=colors))
    finally:
        plt.close(fig)
        if collecting:
            gc.enable()
    ms = max(20, round(1000 * seconds_per_frame))
    out = io.BytesIO()
    frames[0].save(
        out,
        format="GIF",
        save_all=True,
        append_images=frames[1:],
        duration=[ms] * (len(frames) - 1) + [3 * ms],
        loop=0,
        optimize=True,
    )
    return out.getvalue()


def show_animation(draw_frame, n_frames: int, *, alt: str = "animation", **kw) -> None:
    """Display ``gif_bytes(draw_frame, n_frames, **kw)`` inline (an HTML image: notebooks have no GIF output
    type). Needs IPython."""
    import base64
    import html

    from IPython.display import HTML, display

    data = base64.b64encode(gif_bytes(draw_frame, n_frames, **kw)).decode("ascii")
    display(HTML(f'<img src="data:image/gif;base64,{data}" alt="{html.escape(alt)}">'))


def draw_arrows(ax, pi, terminal, ncol: int, *, min_prob: float = 0.03, color: str = "#111111") -> None:
    """pi(a|s) as arrows on every non-terminal tile of a grid axis. pi: Shape (S, A); terminal: Shape (S,)."""
    pi = np.asarray(pi, dtype=float)  # (S, A)
    terminal = np.asarray(terminal, dtype=bool)  # (S,)
    if pi.ndim != 2 or terminal.shape != (pi.shape[0],):
        raise ValueError(f"pi must be (S, A) and terminal (S,), got {pi.shape} and {terminal.shape}")
    for s in np.flatnonzero(~terminal):
        r, c = divmod(int(s), ncol)
        for a in range(min(pi.shape[1], len(ACTION_DIRS))):
            if pi[s, a] >= min_prob:
                g = arrow_geometry(a, pi[s, a])
                ax.arrow(
                    c,
                    r,
                    g.dx,
                    g.dy,
                    width=g.width,
                    head_width=g.head_width,
                    head_length=g.head_length,
                    length_includes_head=True,
                    color=color,
                    alpha=g.alpha,
                    lw=0,
                    zorder=5,
                )


def draw_lake(
    ax,
    mdp,
    *,
    values=None,
    pi=None,
    path=None,
    mark=None,
    cmap: str = "Blues",
    vmax: float | None = 1.0,
    norm=None,
    title: str = "",
    annotate: bool = False,
    fmt: str = "{:.2f}",
):
    """One lake on ``ax``: tiles coloured by type, or by ``values`` (Shape (S,), holes hatched); pi(a|s) as
    arrows (Shape (S, A)); ``path`` (tile indices) as an orange line; tile ``mark`` outlined in orange;
    ``annotate`` writes each non-hole value on its tile. ``mdp`` is a lake (a TabularMDP with ``desc``).
    Returns the image, for a colour bar (``fig.colorbar(im, ax=...)``)."""
    from matplotlib import patheffects
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Rectangle

    if getattr(mdp, "desc", None) is None:
        raise ValueError("draw_lake needs a lake: an MDP with a map ('desc'), e.g. lakes.make_lake('4x4')")
    desc = ["".join(row) for row in mdp.desc]
    nrow, ncol = len(desc), len(desc[0])
    tiles = "".join(desc)
    halo = [patheffects.withStroke(linewidth=2.5, foreground="white")]
    if values is None:
        kinds = "SFHG"
        im = ax.imshow(
            np.array([kinds.index(ch) for ch in tiles]).reshape(nrow, ncol),
            cmap=ListedColormap([TILE_COLORS[k] for k in kinds]),
            vmin=-0.5,
            vmax=3.5,
        )
    else:
        grid = np.asarray(values, dtype=float).reshape(nrow, ncol)  # (nrow, ncol)
        top = vmax if vmax is not None else max(float(np.nanmax(grid)), 1e-12)
        im = ax.imshow(grid, cmap=cmap, norm=norm, vmin=None if norm else 0.0, vmax=None if norm else top)
    flat = None if values is None else np.asarray(values, dtype=float).ravel()  # (S,)
    for s, ch in enumerate(tiles):
        r, c = divmod(s, ncol)
        if values is not None and ch == "H":
            ax.add_patch(Rectangle((c - 0.5, r - 0.5), 1, 1, fill=False, hatch="///", ec="#999999", lw=0))
        if ch in "SGH":
            ax.text(
                c - 0.3,
                r - 0.28,
                ch,
                ha="center",
                va="center",
                fontsize=8,
                fontweight="bold",
                color="white" if ch == "H" and values is None else "#222222",
                path_effects=None if ch == "H" and values is None else halo,
            )
        if annotate and flat is not None and ch != "H" and np.isfinite(flat[s]) and abs(flat[s]) > 0.005:
            ax.text(
                c + 0.42,
                r + 0.36,
                fmt.format(flat[s]),
                ha="right",  # ends inside its own tile, so the last column's labels are not cut off
                va="center",
                fontsize=7,
                color="#222222",
                path_effects=halo,
            )
    if pi is not None:
        draw_arrows(ax, pi, mdp.terminal, ncol)
    if path is not None:
        ax.plot(
            [s % ncol for s in path],
            [s // ncol for s in path],
            color=ROUTE_STYLE["chosen"]["color"],
            lw=2.5,
            alpha=0.7,
            solid_capstyle="round",
            zorder=4,
        )
    if mark is not None:
        r, c = divmod(int(mark), ncol)
        ax.add_patch(
            Rectangle((c - 0.46, r - 0.46), 0.92, 0.92, fill=False, ec=ROUTE_STYLE["chosen"]["color"], lw=2.5, zorder=6)
        )
    ax.set_xticks(np.arange(-0.5, ncol), minor=True)
    ax.set_yticks(np.arange(-0.5, nrow), minor=True)
    ax.grid(which="minor", color="white", lw=1.2)
    ax.tick_params(which="both", length=0, labelbottom=False, labelleft=False)
    ax.set_title(title, fontsize=9)
    return im


def draw_matrix(
    ax,
    matrix,
    *,
    row_labels,
    col_labels,
    blank=None,
    fmt: str = "{:.2f}",
    cmap: str = "Blues",
    fontsize: float = 7,
    hide_zeros: bool = False,
    col_rotation: float = 0,
):
    """A probability matrix (Shape (R, C), values in [0, 1]) with its numbers written in the cells.

    blank: Shape (R,) bool, rows drawn grey and left unlabelled (e.g. terminal states); hide_zeros:
    leave zero cells empty (a sparse transition matrix). Returns the image, for a colour bar."""
    m = np.asarray(matrix, dtype=float)  # (R, C)
    if m.ndim != 2 or len(row_labels) != m.shape[0] or len(col_labels) != m.shape[1]:
        raise ValueError(
            f"matrix must be 2-D with one label per row and per column, got shape {m.shape}, "
            f"{len(row_labels)} row labels and {len(col_labels)} column labels"
        )
    shown = m.copy()
    if blank is not None:
        shown[np.asarray(blank, dtype=bool)] = np.nan
    if hide_zeros:
        shown[m == 0] = np.nan
    ax.set_facecolor("#E6E6E6" if blank is not None else "white")
    im = ax.imshow(shown, cmap=cmap, vmin=0, vmax=1, aspect="auto" if m.shape[1] < m.shape[0] / 2 else "equal")
    for r, c in zip(*np.nonzero(np.isfinite(shown)), strict=True):
        ax.text(
            c,
            r,
            fmt.format(m[r, c]),
            ha="center",
            va="center",
            fontsize=fontsize,
            color="white" if m[r, c] > 0.6 else "black",
        )
    ax.set_xticks(range(m.shape[1]), col_labels, rotation=col_rotation)
    ax.set_yticks(range(m.shape[0]), row_labels)
    ax.set_xticks(np.arange(-0.5, m.shape[1]), minor=True)
    ax.set_yticks(np.arange(-0.5, m.shape[0]), minor=True)
    ax.grid(which="minor", color="#EEEEEE", lw=0.5)
    ax.tick_params(which="minor", length=0)
    return im


def draw_series(ax, steps, series: dict, *, colors: dict | None = None, styles: dict | None = None) -> None:
    """Mean over members and a shaded 95% CI band for each named series (Shape (n_evals, E)) over ``steps``.

    colors / styles: optional {name: colour} and {name: line style}; a name that is a method gets its
    registry colour by default."""
    steps = np.asarray(steps, dtype=float)  # (n_evals,)
    for name, arr in series.items():
        arr = np.asarray(arr, dtype=float).reshape(len(steps), -1)  # (n_evals, E)
        mean, ci = _metrics.mean_ci95(arr, axis=1)
        color = (colors or {}).get(name) or method_color(name.split(" ")[0].lower())
        ax.plot(steps, mean, color=color, lw=2, ls=(styles or {}).get(name, "-"), label=name)
        ax.fill_between(steps, mean - ci, mean + ci, color=color, alpha=0.18, lw=0)
    ax.set_xlabel("fine-tuning step")
    ax.grid(True, alpha=0.3)
