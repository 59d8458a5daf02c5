"""Figures of a study, drawn from its results dict (``results.load`` / ``results.to_dict``).

    plot_curves(res)     metric curves over fine-tuning steps: mean and 95% CI band over seeds
    lake maps (grid drawings):
    plot_explored(res)   per method, the fraction of seeds whose first-layer row of each tile got gradient
    plot_map(res)        the map: tile types, chosen and rejected routes, pi* as arrows
    plot_occupancy(res)  per method, the final discounted state occupancy (mean over seeds)
    any other MDP:
    plot_policy(res)     pi*(a|s) and each method's final pi_theta(a|s) as state x action heatmaps
    plot_tmatrix(res)    T_pi(s'|s) (Eq. 2) of pi* and of each method's final policy as state x state heatmaps
    save_figures(res, out_dir) -> [Path]   the figures of its kind (``figure_names``), each file written atomically,
                                          PNG unless ``formats`` asks for SVG too; ``workers`` forked processes
                                          draw them at once (the CLI: ``figure_workers()``, the CPU cores)
    render_figure(res, name) -> [(file, bytes)]   one figure drawn in memory

matplotlib is imported inside the functions (Agg backend), never at package import time.
Grid conventions as in gymnasium: state = row * ncol + col; actions 0=left, 1=down, 2=right, 3=up.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from . import metrics as _metrics
from . import results
from .drawing import (  # noqa: F401  (the notebooks' helpers and the style, re-exported: the stable API)
    ACTION_DIRS,
    NOTEBOOK_DPI,
    ROUTE_STYLE,
    TILE_COLORS,
    TILE_NAMES,
    ArrowGeometry,
    arrow_geometry,
    draw_arrows,
    draw_lake,
    draw_matrix,
    draw_series,
    gif_bytes,
    method_color,
    method_marker,
    pretty,
    pyplot,
    show,
    show_animation,
)

DEFAULT_METRICS = tuple(name for name, m in _metrics.METRICS.items() if m.default_panel)
LOG_METRICS = {name for name, m in _metrics.METRICS.items() if m.log_scale}


def _as_dict(res) -> dict:
    """Accept a StudyResult as well as its results dict."""
    return res if isinstance(res, dict) else results.to_dict(res)


def _grid(res: dict):
    desc = [r if isinstance(r, str) else "".join(r) for r in res["map"]["desc"]]
    return desc, len(desc), len(desc[0])


def is_grid(res: dict) -> bool:
    """Whether the results are of a lake map (drawn as a grid)."""
    return res["map"].get("desc") is not None


def _map_name(res: dict) -> str:
    if not is_grid(res):
        mp = res["map"]
        return f"{mp.get('name') or res.get('config', {}).get('env', 'MDP')} ({len(mp['pi_star'])} states)"
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
    values = res.get("values")  # a sweep cell's swept values (``sweep.compact``)
    swept = "".join(f" · {k}={_label(v)}" for k, v in values.items()) if isinstance(values, dict) else ""
    kind = "Frozen Lake " if is_grid(res) else ""
    return f"{kind}{_map_name(res)} · base policy {base} · {_n_seeds(res)} seeds{swept}"


def _label(value) -> str:
    from .sweep_spec import label

    return label(value)


# The y axis of each curve panel (its title names the metric in full); a metric not listed: "MSE" or its name.
Y_LABELS = {
    "explored": "tiles",
    "explored_alignment": "Jaccard index",
    "success": "probability",
    "value": "value",
    "loss": "loss",
    "cosine": "cosine",
    "kl": "KL (nats)",
}
LOG_BANDS = ("ci", "range")


def plot_curves(res: dict, metrics: tuple[str, ...] | list[str] | None = None, *, ncols: int = 3, log_band: str = "ci"):
    """One panel per metric over fine-tuning steps; one line per method: mean over seeds, shaded 95% CI.

    MSE / KL panels use a log y axis when the values span more than two decades. ``metrics`` picks the
    panels, in order (default ``DEFAULT_METRICS``, those present in the results). ``log_band="range"``
    shades the seeds' min-max range on the log panels instead of the 95% CI, whose lower end with a few
    seeds often falls below 0 and so off a log axis.
    """
    if log_band not in LOG_BANDS:
        raise ValueError(f"log_band must be one of {LOG_BANDS}, got {log_band!r}")
    res = _as_dict(res)
    plt = pyplot()
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
            lower, upper = mean - ci, mean + ci
            if log and log_band == "range":
                lower, upper = arr.min(1), arr.max(1)
            if log:
                lower = np.maximum(lower, pos.min() / 2)  # a log axis has no room below 0
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
            ax.fill_between(steps, lower, upper, color=method_color(m), alpha=0.18, lw=0)
        if log:
            ax.set_yscale("log")
            ax.set_ylim(pos.min() / 2, pos.max() * 2)
        if name in ("success", "value_ratio"):
            star = res.get("fit", {}).get(f"star_{name}")
            if star:
                ax.axhline(float(np.mean(star)), color="#444444", ls=":", lw=1.3, label="theta*")
                ref_line = True
            if name == "success":
                ax.set_ylim(-0.03, 1.03)
        if name == "explored":
            ax.set_ylim(bottom=0)
            ax.yaxis.get_major_locator().set_params(integer=True)
        arrow = "" if higher is None else (" (higher is better)" if higher else " (lower is better)")
        ax.set_title(pretty(label) + arrow, fontsize=10)
        ax.set_xlabel("fine-tuning step")
        ax.set_ylabel(Y_LABELS.get(name, "MSE" if "mse" in name else name) + (" (log scale)" if log else ""))
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
    band = " (log panels: the seeds' range)" if log_band == "range" else ""
    fig.suptitle(_subtitle(res) + " · mean and 95% CI" + band, fontsize=11)
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
    plt = pyplot()
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
    plt = pyplot()
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


def _state_labels(res: dict, states) -> list[str]:
    names = res["map"].get("state_names")
    return [str(names[s]) if names else str(s) for s in states]


def _panel_grid(n: int, rows: int, cols: int, per_row: int = 4):
    """A figure with n heatmap panels, each sized for a (rows x cols) matrix."""
    plt = pyplot()
    ncols = min(per_row, n)
    nr = -(-n // ncols)
    w = float(np.clip(0.32 * cols + 1.4, 2.6, 5.0))
    h = float(np.clip(0.28 * rows + 1.0, 2.2, 7.0))
    fig, axes = plt.subplots(nr, ncols, figsize=(w * ncols + 1.0, h * nr + 1.2), squeeze=False, layout="constrained")
    for ax in list(axes.flat)[n:]:
        ax.set_visible(False)
    return fig, axes


def _heat(ax, m, row_labels, col_labels, title: str, color: str = "#111111"):
    """One probability heatmap; numbers in the cells where it is small enough to read them."""
    if m.shape[0] <= 16 and m.shape[1] <= 16:
        im = draw_matrix(ax, m, row_labels=row_labels, col_labels=col_labels, hide_zeros=True, fontsize=6.5)
    else:
        im = ax.imshow(m, cmap="Blues", vmin=0, vmax=1, aspect="auto", interpolation="nearest")
        for axis, labels in ((ax.xaxis, col_labels), (ax.yaxis, row_labels)):
            step = max(1, len(labels) // 12)
            axis.set_ticks(range(0, len(labels), step), [labels[i] for i in range(0, len(labels), step)], fontsize=7)
    ax.set_title(title, fontsize=10, color=color, fontweight="bold")
    return im


def _policies(res: dict) -> dict[str, np.ndarray]:
    """pi* and each method's final mean policy (S, A), from results.json."""
    out = {r"$\pi^*$": np.asarray(res["map"]["pi_star"], dtype=float)}
    for m, pi in (res.get("final_policy") or {}).items():
        out[m] = np.asarray(pi, dtype=float)
    return out


def plot_policy(res: dict):
    """pi*(a|s) and each method's final pi_theta(a|s) (mean over seeds) as state x action heatmaps,
    on the non-terminal states. For any MDP (the lake's own drawing is ``plot_map``)."""
    res = _as_dict(res)
    pols = _policies(res)
    states = np.flatnonzero(~np.asarray(res["map"]["terminal"], dtype=bool))
    A = next(iter(pols.values())).shape[1]
    actions = res["map"].get("action_names") or [str(a) for a in range(A)]
    fig, axes = _panel_grid(len(pols), len(states), A)
    im = None
    for ax, (name, pi) in zip(axes.flat, pols.items(), strict=False):
        title = name if name.startswith("$") else name.upper()
        color = "#111111" if name.startswith("$") else method_color(name)
        im = _heat(ax, pi[states], _state_labels(res, states), list(actions), title, color)
        ax.set_xlabel("action")
    if im is not None:
        fig.colorbar(im, ax=axes.ravel().tolist(), shrink=0.8, label=r"$\pi(a|s)$")
    fig.suptitle("The policies, state x action (final, mean over seeds)\n" + _subtitle(res), fontsize=11)
    return fig


def plot_tmatrix(res: dict):
    """T_pi(s'|s) = sum_a pi(a|s) P(s'|s, a) (paper Eq. 2) of pi* and of each method's final policy (mean
    over seeds), as state x state heatmaps on the non-terminal rows. Needs results.json's ``map.model``."""
    res = _as_dict(res)
    model = res["map"].get("model")
    if not model:
        raise ValueError("the results hold no 'map.model' (lake maps are drawn with plot_map)")
    ns = np.asarray(model["next_states"], dtype=np.int64)  # (S, A, K)
    pr = np.asarray(model["probs"], dtype=float)  # (S, A, K)
    S = ns.shape[0]
    rows = np.flatnonzero(~np.asarray(res["map"]["terminal"], dtype=bool))
    pols = _policies(res)
    fig, axes = _panel_grid(len(pols), len(rows), S)
    im = None
    for ax, (name, pi) in zip(axes.flat, pols.items(), strict=False):
        T = np.zeros((S, S))
        np.add.at(T, (np.repeat(np.arange(S), ns.shape[1] * ns.shape[2]), ns.ravel()), (pi[:, :, None] * pr).ravel())
        title = name if name.startswith("$") else name.upper()
        color = "#111111" if name.startswith("$") else method_color(name)
        im = _heat(ax, T[rows], _state_labels(res, rows), _state_labels(res, range(S)), title, color)
        ax.set_xlabel("next state s'")
    if im is not None:
        fig.colorbar(im, ax=axes.ravel().tolist(), shrink=0.8, label=r"$T_\pi(s'|s)$")
    fig.suptitle(
        r"State transitions $T_\pi(s'|s)$ (Eq. 2), final, mean over seeds" + "\n" + _subtitle(res), fontsize=11
    )
    return fig


_NEEDS = {
    "curves": "curves",
    "explored": "explored",
    "map": "map",
    "occupancy": "final_occupancy",
    "policy": "final_policy",
    "tmatrix": "final_policy",
}
FIGURES = {
    "curves": plot_curves,
    "explored": plot_explored,
    "map": plot_map,
    "occupancy": plot_occupancy,
    "policy": plot_policy,
    "tmatrix": plot_tmatrix,
}
GRID_FIGURES = ("curves", "explored", "map", "occupancy")  # lake maps
MDP_FIGURES = ("curves", "policy", "tmatrix")  # every other MDP


def figure_names(res: dict) -> list[str]:
    """The figures ``save_figures`` draws for these results: the grid drawings for a lake map, the state x
    action and state x state heatmaps otherwise; only those whose data the results hold."""
    kind = GRID_FIGURES if is_grid(res) else MDP_FIGURES
    return [n for n in FIGURES if n in kind and res.get(_NEEDS.get(n, n))]


_DRAW_COST = {"curves": 4, "occupancy": 3, "tmatrix": 3, "explored": 2, "policy": 2, "map": 1}  # relative, measured
FIGURE_FORMATS = ("png", "svg")  # what save_figures writes; reproduce and plot write PNG unless asked (--formats)


def figure_formats(text: str) -> tuple[str, ...]:
    """``--formats`` parsed: comma-separated names of FIGURE_FORMATS, in the order given, each once."""
    names = tuple(dict.fromkeys(f.strip().lower() for f in str(text).split(",") if f.strip()))
    bad = [f for f in names if f not in FIGURE_FORMATS]
    if not names or bad:
        raise ValueError(
            f"--formats must name figure formats from {', '.join(FIGURE_FORMATS)} (comma-separated), got {text!r}"
        )
    return names


def render_figure(res: dict, name: str, formats: tuple[str, ...] = ("png",), dpi: int = 120) -> list[tuple[str, bytes]]:
    """Draw figure ``name`` of ``res`` and return its files as (file name, bytes), one per format.

    The layout is computed once, by the first format's drawing, and kept for the others (a constrained
    layout is most of a figure's drawing time). numpy and matplotlib only: safe in a forked process."""
    plt = pyplot()
    rid = res.get(results.RUN_ID)  # the run's id in each file's metadata (none for older results)
    meta: dict[str, dict[str, str | None]] = {"png": {}, "svg": {"Date": None}}
    if rid is not None:
        meta["png"]["Source"], meta["svg"]["Identifier"] = f"frozenlake-ift run {rid}", rid
    files = []
    fig = FIGURES[name](res)
    try:
        for i, ext in enumerate(formats):
            buf = io.BytesIO()
            with plt.rc_context({"svg.hashsalt": "frozenlake_ift"}):  # same results -> same bytes
                fig.savefig(buf, format=ext, dpi=dpi, metadata=meta.get(ext))
            if i == 0:
                fig.set_layout_engine("none")  # the positions the layout found stay for the other formats
            files.append((f"{name}.{ext}", buf.getvalue()))
    finally:
        plt.close(fig)
    return files


def figure_workers(requested: int | None = None) -> int:
    """How many processes ``save_figures`` draws in: ``requested``, or by default the usable CPU cores (at
    most 4); 1 where processes cannot be forked (not Linux), since a spawned process would re-import
    everything and cost more than it saves, and 1 inside a daemonic process (a pool's worker)."""
    import multiprocessing
    import os
    import sys

    if not sys.platform.startswith("linux") or "fork" not in multiprocessing.get_all_start_methods():
        return 1
    if multiprocessing.current_process().daemon:  # a daemonic pool's worker may not start processes
        return 1
    if requested is not None:
        return max(1, int(requested))
    return max(1, min(4, len(os.sched_getaffinity(0))))


def save_figures(
    res: dict, out_dir, *, formats: tuple[str, ...] = ("png",), dpi: int = 120, workers: int = 1
) -> list[Path]:
    """Render every figure to memory first, then write each file atomically; return the paths written.

    Writes ``figure_names(res)`` (a lake: curves, explored, map, occupancy; any other MDP: curves, policy,
    tmatrix), each in every format of ``formats`` (FIGURE_FORMATS), drawn by ``render_figure``. With
    ``workers`` > 1 (``figure_workers()`` gives the CLI's choice) the figures are drawn in that many forked
    processes at once, into the same bytes. An error while rendering writes nothing; an error while
    writing leaves no partial file.
    """
    import functools

    formats = figure_formats(",".join(formats))
    res = _as_dict(res)
    names = figure_names(res)
    draw = functools.partial(render_figure, res, formats=formats, dpi=dpi)
    workers = min(figure_workers(workers), len(names))
    if workers > 1:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        pyplot()  # imported once here, so that the forked processes start with it
        ctx = multiprocessing.get_context("fork")
        slowest_first = sorted(names, key=lambda n: -_DRAW_COST.get(n, 0))  # so the workers finish together
        with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
            by_name = dict(zip(slowest_first, pool.map(draw, slowest_first), strict=True))
        drawn = [by_name[n] for n in names]
    else:
        drawn = [draw(name) for name in names]
    rendered = [(Path(out_dir) / file, data) for files in drawn for file, data in files]
    for path, data in rendered:
        results.atomic_write(path, data)
    return [p for p, _ in rendered]
