"""Figures of a Frozen-Lake study, drawn from its results dict (``results.load`` / ``results.to_dict``).

    plot_curves(res)     metric curves over fine-tuning steps: mean and 95% CI band over seeds
    plot_explored(res)   per method, the fraction of seeds whose first-layer row of each tile got gradient
    plot_map(res)        the map: tile types, chosen and rejected routes, pi* as arrows
    plot_occupancy(res)  per method, the final discounted state occupancy (mean over seeds)
    save_figures(res, out_dir) -> [Path]   all of them as PNG and SVG, each file written atomically

matplotlib is imported inside the functions (Agg backend), never at package import time.
Grid conventions as in gymnasium: state = row * ncol + col; actions 0=left, 1=down, 2=right, 3=up.
"""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any

import numpy as np

from . import metrics as _metrics
from . import results
from .actions import DELTAS
from .methods import get_method

DEFAULT_METRICS = tuple(name for name, m in _metrics.METRICS.items() if m.default_panel)
LOG_METRICS = {name for name, m in _metrics.METRICS.items() if m.log_scale}
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


def _mpl():
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


def _as_dict(res) -> dict:
    """Accept a StudyResult as well as its results dict."""
    return res if isinstance(res, dict) else results.to_dict(res)


def _grid(res: dict):
    desc = [r if isinstance(r, str) else "".join(r) for r in res["map"]["desc"]]
    return desc, len(desc), len(desc[0])


def _map_name(res: dict) -> str:
    cfg, (_, nrow, ncol) = res.get("config", {}), _grid(res)
    name = cfg.get("map", "custom")
    name = name if isinstance(name, str) else "custom"
    size = f"{nrow}x{ncol}"
    kind = "slippery" if cfg.get("slippery") else "deterministic"
    return f"{size if name == size else repr(name) + ' ' + size}, {kind}"


def _n_seeds(res: dict) -> int:
    first = next(iter(next(iter(res["curves"].values()), {}).values()), None)  # (n_evals, E) or None
    return int(np.shape(first)[1]) if first is not None else int(res.get("config", {}).get("seeds", 0))


def _subtitle(res: dict) -> str:
    base = res.get("config", {}).get("base", "?")
    return f"Frozen Lake {_map_name(res)} · base policy {base} · {_n_seeds(res)} seeds"


def plot_curves(res: dict, metrics: tuple[str, ...] | list[str] | None = None, *, ncols: int = 3):
    """One panel per metric over fine-tuning steps; one line per method: mean over seeds, shaded 95% CI.

    MSE / KL panels use a log y axis when the values span more than two decades. ``metrics`` picks the
    panels, in order (default ``DEFAULT_METRICS``, those present in the results).
    """
    res = _as_dict(res)
    plt = _mpl()
    methods = list(res["curves"])
    present = set.intersection(*(set(res["curves"][m]) for m in methods)) if methods else set()
    names = [k for k in (metrics or DEFAULT_METRICS) if k in present]
    if metrics and len(names) != len(list(metrics)):
        raise ValueError(
            f"metrics {sorted(set(metrics) - present)} are not in the results; available: {sorted(present)}"
        )
    if not names:
        raise ValueError("the results hold no curves to plot")
    steps = np.asarray(res["steps"], dtype=float)
    ref_line, every = False, max(1, len(steps) // 8)  # about 8 markers a line, staggered by method
    ncols = min(ncols, len(names))
    nrows = -(-len(names) // ncols)
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(4.1 * ncols, 3.0 * nrows + 0.6), squeeze=False, layout="constrained"
    )
    for ax, name in zip(axes.flat, names, strict=False):  # the grid may have spare axes
        spec = results.METRICS.get(name)
        label, higher = (spec.label, spec.higher_is_better) if spec else (name, None)
        arrs = {m: np.asarray(res["curves"][m][name], dtype=float).reshape(len(steps), -1) for m in methods}
        pos = np.concatenate([a[a > 0] for a in arrs.values()])  # (n_evals, E) per method
        log = name in LOG_METRICS and pos.size > 0 and pos.max() / pos.min() > 100  # two decades
        for i, (m, arr) in enumerate(arrs.items()):
            mean, ci = _metrics.mean_ci95(arr, axis=1)
            lower = np.maximum(mean - ci, pos.min() / 2) if log else mean - ci  # a log axis has no room below 0
            ax.plot(
                steps,
                mean,
                color=method_color(m),
                lw=2,
                label=m.upper(),
                ms=4.5,
                marker=method_marker(m),
                markevery=(i % every, every),
            )
            ax.fill_between(steps, lower, mean + ci, color=method_color(m), alpha=0.18, lw=0)
        if log:
            ax.set_yscale("log")
            ax.set_ylim(pos.min() / 2, pos.max() * 2)
        if name == "success":
            star = res.get("fit", {}).get("star_success")
            if star:
                ax.axhline(float(np.mean(star)), color="#444444", ls=":", lw=1.3, label="theta*")
                ref_line = True
            ax.set_ylim(-0.03, 1.03)
        if name == "explored":
            ax.set_ylim(bottom=0)
            ax.yaxis.get_major_locator().set_params(integer=True)
        arrow = "" if higher is None else (" (higher is better)" if higher else " (lower is better)")
        ax.set_title(pretty(label) + arrow, fontsize=10)
        ax.set_xlabel("fine-tuning step")
        ax.grid(True, which="major", alpha=0.3)
        ax.set_xlim(steps[0], steps[-1])
        ax.xaxis.get_major_locator().set_params(integer=True)
    for ax in list(axes.flat)[len(names) :]:
        ax.set_visible(False)
    handles = [
        plt.Line2D([], [], color=method_color(m), lw=2.5, label=m.upper(), ms=5, marker=method_marker(m))
        for m in methods
    ]
    if ref_line:
        handles.append(plt.Line2D([], [], color="#444444", ls=":", lw=1.3, label=r"$\theta^*$ (fitted optimum)"))
    fig.legend(handles=handles, loc="outside lower center", ncols=len(handles), frameon=False, fontsize=10)
    fig.suptitle(_subtitle(res) + " · mean and 95% CI", fontsize=11)
    return fig


def _draw_board(ax, res: dict, *, tiles: bool, tile_pts: float = 30.0, lum=None):
    """Grid lines, optional tile colours, S/H/G letters (holes hatched) on an (nrow, ncol) image axis."""
    from matplotlib import patheffects
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Rectangle

    desc, nrow, ncol = _grid(res)
    if tiles:
        kinds = "FHSG"
        idx = np.array([[kinds.index(ch) if ch in kinds else 0 for ch in row] for row in desc])
        ax.imshow(idx, cmap=ListedColormap([TILE_COLORS[k] for k in kinds]), vmin=-0.5, vmax=3.5)
    fs = float(np.clip(0.36 * tile_pts, 6.0, 14.0))  # letter size from the tile size in points
    for r, row in enumerate(desc):
        for c, ch in enumerate(row):
            if ch == "H" and not tiles:
                ax.add_patch(Rectangle((c - 0.5, r - 0.5), 1, 1, fill=False, hatch="//", ec="#C4C4C4", lw=0))
            if ch in "SG":  # routes end here: dark letters with a white halo read over any colour
                ax.text(
                    c - 0.3,
                    r - 0.3,
                    ch,
                    ha="center",
                    va="center",
                    fontsize=fs,
                    fontweight="bold",
                    zorder=8,
                    path_effects=[patheffects.withStroke(linewidth=3, foreground="white")],
                    color="#111111",
                )
            elif ch == "H" and tile_pts >= 12:  # white on dark tiles, grey on light ones; none on huge maps
                dark = tiles or (lum is not None and lum[r, c] < 0.5)
                ax.text(
                    c,
                    r,
                    ch,
                    ha="center",
                    va="center",
                    fontsize=fs * 0.85,
                    zorder=8,
                    fontweight="bold" if tiles else "normal",
                    color="white" if dark else "#555555",
                )
    ax.set_xticks(np.arange(-0.5, ncol, 1), minor=True)
    ax.set_yticks(np.arange(-0.5, nrow, 1), minor=True)
    ax.grid(which="minor", color="white" if tiles else "#BBBBBB", lw=1)
    ax.tick_params(which="both", length=0, labelbottom=False, labelleft=False)
    ax.set_xlim(-0.5, ncol - 0.5)
    ax.set_ylim(nrow - 0.5, -0.5)


def _draw_routes(ax, res: dict, lw: float = 2.6) -> list:
    """Chosen route solid, rejected dashed, through tile centres (slightly offset so both show)."""
    _, _, ncol = _grid(res)
    handles = []
    for key, off in (("chosen", -0.12), ("rejected", 0.12)):
        states = res["map"].get(key, {}).get("states") or []
        if not states:
            continue
        xs = np.array([s % ncol for s in states], float) + off
        ys = np.array([s // ncol for s in states], float) + off
        n = len(res["map"][key].get("actions") or states[1:])
        ax.plot(xs, ys, lw=lw + 2.4, color="white", alpha=0.8, solid_capstyle="round", zorder=6)  # halo
        (h,) = ax.plot(
            xs, ys, lw=lw, solid_capstyle="round", zorder=6, label=f"{key} route ({n} steps)", **ROUTE_STYLE[key]
        )
        ax.plot(xs[-1], ys[-1], marker="o", ms=lw * 2.2, color=ROUTE_STYLE[key]["color"], mec="white", zorder=6)
        handles.append(h)
    return handles


def _heatmaps(res: dict, data: dict, *, title: str, cbar_label: str, cmap: str, norm=None, fmt=None):
    """One board per method with a value per tile (mean over seeds), routes, a shared colour bar."""
    plt = _mpl()
    _, nrow, ncol = _grid(res)
    methods = list(data)
    ncols = min(4 if max(nrow, ncol) <= 10 else 2, len(methods))  # big maps: two boards a row
    nr = -(-len(methods) // ncols)
    side = 3.0 if max(nrow, ncol) <= 8 else 3.8
    fig, axes = plt.subplots(
        nr,
        ncols,
        figsize=(side * ncols * ncol / max(nrow, ncol) + 1.2, side * nr * nrow / max(nrow, ncol) + 1.1),
        squeeze=False,
        layout="constrained",
    )
    im = handles = None
    for ax, m in zip(axes.flat, methods, strict=False):  # the grid may have spare axes
        grid = np.asarray(data[m], dtype=float).reshape(-1, nrow * ncol).mean(0).reshape(nrow, ncol)
        im = ax.imshow(grid, cmap=cmap, norm=norm, vmin=None if norm else 0.0, vmax=None if norm else 1.0)
        lum = im.cmap(im.norm(grid))[..., :3] @ [0.299, 0.587, 0.114]  # (nrow, ncol): sets the letter colour
        _draw_board(ax, res, tiles=False, tile_pts=side * 72 / max(nrow, ncol), lum=lum)
        handles = _draw_routes(ax, res)
        ax.set_title(
            m.upper() + (f" · {fmt(m, grid)}" if fmt else ""), fontsize=11, color=method_color(m), fontweight="bold"
        )
    for ax in list(axes.flat)[len(methods) :]:
        ax.set_visible(False)
    fig.colorbar(im, ax=axes.ravel().tolist(), shrink=0.85, label=cbar_label)
    if handles:
        fig.legend(handles=handles, loc="outside lower center", ncols=2, frameon=False, fontsize=9)
    fig.suptitle(title + "\n" + _subtitle(res), fontsize=11)
    return fig


def plot_explored(res: dict):
    """Explored grid per method: fraction of seeds whose first-layer row of a tile received gradient."""
    res = _as_dict(res)
    if not res.get("explored"):
        raise ValueError("the results hold no 'explored' grids")
    return _heatmaps(
        res,
        res["explored"],
        title="Explored grid: tiles whose first-layer weights got gradient",
        cbar_label="fraction of seeds",
        cmap="Blues",
        fmt=lambda m, g: f"{g.sum():.1f} tiles on average",
    )


def plot_occupancy(res: dict):
    """Final discounted state occupancy of each method's policy (mean over seeds), log colour scale."""
    res = _as_dict(res)
    from matplotlib.colors import LogNorm

    occ = res.get("final_occupancy")
    if not occ:
        raise ValueError("the results hold no 'final_occupancy'")
    allv = np.concatenate([np.asarray(v, dtype=float).ravel() for v in occ.values()])
    hi = max(float(allv.max()), 1e-12)
    norm = LogNorm(vmin=max(hi * 1e-4, 1e-12), vmax=hi, clip=True)
    gamma = min(float(res.get("config", {}).get("gamma", 0.95)), 0.999)

    def fmt(m, grid):
        succ = res["curves"].get(m, {}).get("success")
        return f"success {np.mean(succ[-1]):.2f}" if succ else f"{grid.sum():.2f}"

    title = f"Where each final policy spends its time (discounted occupancy, $\\gamma$={gamma:g})"
    return _heatmaps(
        res, occ, title=title, cbar_label="occupancy (mean over seeds, log scale)", cmap="magma_r", norm=norm, fmt=fmt
    )


def plot_map(res: dict):
    """The map: tiles coloured by type, both routes, and pi*(a|s) as arrows on every non-terminal tile."""
    res = _as_dict(res)
    plt = _mpl()
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    desc, nrow, ncol = _grid(res)
    pi = np.asarray(res["map"]["pi_star"], dtype=float).reshape(nrow * ncol, -1)
    terminal = np.asarray(res["map"].get("terminal") or [ch in "HG" for row in desc for ch in row], dtype=bool)
    side = min(7.0, 0.7 * max(nrow, ncol) + 2.5)
    fig, ax = plt.subplots(
        figsize=(max(side * ncol / max(nrow, ncol), 5.6) + 0.3, side * nrow / max(nrow, ncol) + 1.7),
        layout="constrained",
    )
    _draw_board(ax, res, tiles=True, tile_pts=side * 72 / max(nrow, ncol))
    handles = _draw_routes(ax, res, lw=3.0)
    for s in np.flatnonzero(~terminal):
        r, c = divmod(int(s), ncol)
        for a in range(min(4, pi.shape[1])):
            p = float(pi[s, a])
            if p < 0.02:
                continue
            dx, dy = ACTION_DIRS[a] * (0.1 + 0.32 * p)  # length and opacity grow with pi*(a|s)
            ax.arrow(
                c,
                r,
                dx,
                dy,
                width=0.02 + 0.025 * p,
                head_width=0.08 + 0.1 * p,
                head_length=0.07 + 0.06 * p,
                length_includes_head=True,
                color="#1B1B1B",
                alpha=0.35 + 0.65 * p,
                lw=0,
                zorder=7,
            )
    kinds = [k for k in "SFHG" if any(k in row for row in desc)]
    handles += [Patch(fc=TILE_COLORS[k], ec="#999999", label=TILE_NAMES[k]) for k in kinds]
    handles.append(
        Line2D(
            [],
            [],
            color="#1B1B1B",
            marker=r"$\rightarrow$",
            ms=14,
            lw=0,
            label=r"$\pi^*(a|s)$: longer, darker = likelier",
        )
    )
    fig.legend(handles=handles, loc="outside lower center", ncols=3, frameon=False, fontsize=9)
    temp = res.get("config", {}).get("temperature")
    fig.suptitle(
        f"Frozen Lake {_map_name(res)}\nroutes and the optimal policy $\\pi^*$"
        + (f" (softmax temperature {temp:g})" if temp is not None else ""),
        fontsize=11,
    )
    return fig


_NEEDS = {"curves": "curves", "explored": "explored", "map": "map", "occupancy": "final_occupancy"}
FIGURES = {"curves": plot_curves, "explored": plot_explored, "map": plot_map, "occupancy": plot_occupancy}


def save_figures(res: dict, out_dir, *, formats: tuple[str, ...] = ("png", "svg"), dpi: int = 120) -> list[Path]:
    """Render every figure to memory first, then write each file atomically; return the paths written.

    Writes curves, explored, map and (when the results hold final occupancies) occupancy, each as
    PNG and SVG. An error while rendering writes nothing; an error while writing leaves no partial file.
    """
    res = _as_dict(res)
    plt = _mpl()
    rendered: list[tuple[Path, bytes]] = []
    for name in [n for n in FIGURES if res.get(_NEEDS.get(n, n))]:  # e.g. no occupancy in old results
        fig = FIGURES[name](res)
        try:
            for ext in formats:
                buf = io.BytesIO()
                with plt.rc_context({"svg.hashsalt": "frozenlake_ift"}):  # same results -> same bytes
                    fig.savefig(buf, format=ext, dpi=dpi, metadata={"svg": {"Date": None}}.get(ext))
                rendered.append((Path(out_dir) / f"{name}.{ext}", buf.getvalue()))
        finally:
            plt.close(fig)
    for path, data in rendered:
        results.atomic_write(path, data)
    return [p for p, _ in rendered]


# ---- drawing helpers for the notebooks
# The small building blocks the teaching notebooks (notebooks/*.ipynb) draw with, so no notebook carries
# its own copy: a figure shown inline as a PNG, the arrow of pi(a|s), a lake with values, arrows, a path
# and a marked tile, a labelled matrix, and mean-and-CI curves of any per-member series.

from dataclasses import dataclass  # noqa: E402  (this section is appended; the lead may move it up)

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

    plt = _mpl()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    display(Image(buf.getvalue()))


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
                c + 0.24,
                r + 0.36,
                fmt.format(flat[s]),
                ha="center",
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
