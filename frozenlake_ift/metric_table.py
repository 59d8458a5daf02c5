"""The one metric table of the study (no torch): every metric's name, label and how to read it.

``metrics`` computes them; the study records them, results summarises and ranks them, plots and the
report draw them, and the method registry refuses statistics that would shadow them. Kept apart from
``metrics`` so that registering a method or checking a config imports no torch.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Metric:
    """One metric of the study: its name in files, a label for tables and figures, and how to read it.

    higher_is_better: True / False, or None for quantities that are not ranked (a method's own loss).
    log_scale: plot on a log axis when values span more than two decades. default_panel: drawn by
    ``plots.plot_curves`` unless asked otherwise.
    """

    name: str
    label: str
    higher_is_better: bool | None
    log_scale: bool = False
    default_panel: bool = False


# The one metric table: study (what it records), results (summary, ranking), plots and report read it.
METRICS: dict[str, Metric] = {
    m.name: m
    for m in (
        Metric("param_mse", "parameter MSE to theta*", False, log_scale=True, default_panel=True),
        Metric("policy_mse", "MSE of pi(a|s) (Eq. 1) to pi_theta*", False, log_scale=True, default_panel=True),
        Metric("policy_mse_opt", "MSE of pi(a|s) (Eq. 1) to pi*", False, log_scale=True, default_panel=True),
        Metric(
            "tmatrix_mse",
            "MSE of T_pi(s'|s) (Eq. 2) to pi_theta*",
            False,
            log_scale=True,
            default_panel=True,
        ),
        Metric("tmatrix_mse_opt", "MSE of T_pi(s'|s) (Eq. 2) to pi*", False, log_scale=True),
        Metric(
            "policy_mse_truly",
            "MSE of pi(a|s) to the truly-trained policy",
            False,
            log_scale=True,
            default_panel=True,
        ),
        Metric("kl", "KL(pi* || pi_theta)", False, log_scale=True, default_panel=True),
        Metric("success", "success probability", True, default_panel=True),
        Metric("value", "value from rho0", True),
        Metric("value_ratio", "normalised return at the start (1 = optimal)", True, default_panel=True),
        Metric("explored", "explored states", True, default_panel=True),
        Metric("explored_alignment", "explored tiles vs pi*'s tiles (Jaccard)", True, default_panel=True),
        Metric("cosine", "cos(theta - theta_0, theta* - theta_0)", True),
        Metric("loss", "training loss (own objective)", None),
    )
}
TRULY_METRIC = "policy_mse_truly"  # recorded only when the ``truly`` method runs (against its final policy)
