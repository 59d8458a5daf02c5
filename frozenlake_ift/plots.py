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
    method_color,
    method_marker,
    pretty,
    pyplot,
    show,
)

DEFAULT_METRICS = tuple(name for name, m in _metrics.METRICS.items() if m.default_panel)
LOG_METRICS = {name for name, m in _metrics.METRICS.items() if m.log_scale}


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
    values = res.get("values")  # a sweep cell's swept values (``sweep.compact``)
    swept = "".join(f" · {k}={_label(v)}" for k, v in values.items()) if isinstance(values, dict) else ""
    return f"Frozen Lake {_map_name(res)} · base policy {base} · {_n_seeds(res)} seeds{swept}"


def _label(value) -> str:
    from .sweep_spec import label

    return label(value)


def plot_curves(res: dict, metrics: tuple[str, ...] | list[str] | None = None, *, ncols: int = 3):
    """One panel per metric over fine-tuning steps; one line per method: mean over seeds, shaded 95% CI.

    MSE / KL panels use a log y axis when the values span more than two decades. ``metrics`` picks the
    panels, in order (default ``DEFAULT_METRICS``, those present in the results).
    """
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


_NEEDS = {"curves": "curves", "explored": "explored", "map": "map", "occupancy": "final_occupancy"}
FIGURES = {"curves": plot_curves, "explored": plot_explored, "map": plot_map, "occupancy": plot_occupancy}


def save_figures(res: dict, out_dir, *, formats: tuple[str, ...] = ("png", "svg"), dpi: int = 120) -> list[Path]:
    """Render every figure to memory first, then write each file atomically; return the paths written.

    Writes curves, explored, map and (when the results hold final occupancies) occupancy, each as
    PNG and SVG. An error while rendering writes nothing; an error while writing leaves no partial file.
    """
    res = _as_dict(res)
    plt = pyplot()
    rid = res.get(results.RUN_ID)  # the run's id in each file's metadata (none for older results)
    meta: dict[str, dict[str, str | None]] = {"png": {}, "svg": {"Date": None}}
    if rid is not None:
        meta["png"]["Source"], meta["svg"]["Identifier"] = f"frozenlake-ift run {rid}", rid
    rendered: list[tuple[Path, bytes]] = []
    for name in [n for n in FIGURES if res.get(_NEEDS.get(n, n))]:  # e.g. no occupancy in old results
        fig = FIGURES[name](res)
        try:
            for ext in formats:
                buf = io.BytesIO()
                with plt.rc_context({"svg.hashsalt": "frozenlake_ift"}):  # same results -> same bytes
                    fig.savefig(buf, format=ext, dpi=dpi, metadata=meta.get(ext))
                rendered.append((Path(out_dir) / f"{name}.{ext}", buf.getvalue()))
        finally:
            plt.close(fig)
    for path, data in rendered:
        results.atomic_write(path, data)
    return [p for p, _ in rendered]
