"""The built-in methods, as registry records (functions named by "module:function": no torch import here)."""

from __future__ import annotations

from .registry import METHODS, Method, register_method

_OFF = "frozenlake_ift.methods.offline"
_ON = "frozenlake_ift.methods.online"
_CHOSEN = "frozenlake_ift.methods.batches:chosen_batch"
_PAIR_FIELDS = ("chosen", "negatives", "resample_every", "pairs", "horizon")

BUILTIN_METHODS = (
    # the paper's Frozen-Lake study (Sec. 5.3, App. B.2): the only methods its claims are judged over
    Method(
        "sft",
        f"{_OFF}:sft",
        _CHOSEN,
        in_paper=True,
        table1_row="SFT",
        fields=("chosen",),
        color="#E69F00",
        marker="o",
        description="supervised fine-tuning: mean NLL of the chosen trajectory",
    ),
    Method(
        "ift",
        f"{_OFF}:ift",
        _CHOSEN,
        in_paper=True,
        table1_row="IFT",
        fields=("chosen", "lam", "prop_gamma"),
        color="#0072B2",
        marker="s",
        description="intuitive fine-tuning: temporal residual input (Eq. 17) + relation propagation (Eq. 18)",
    ),
    Method(
        "dpo",
        f"{_OFF}:dpo",
        needs_reference=True,
        in_paper=True,
        table1_row="DPO offline",
        fields=("dpo_beta",) + _PAIR_FIELDS,
        color="#009E73",
        marker="^",
        description="DPO on the chosen / rejected pair against the frozen theta_0",
    ),
    Method(
        "orpo",
        f"{_OFF}:orpo",
        in_paper=True,
        fields=("orpo_beta",) + _PAIR_FIELDS,
        color="#CC79A7",
        marker="D",
        description="ORPO: chosen NLL + odds-ratio preference term",
    ),
    # more offline preference losses
    Method(
        "ipo",
        f"{_OFF}:ipo",
        needs_reference=True,
        fields=("ipo_beta",) + _PAIR_FIELDS,
        color="#44AA99",
        marker="<",
        description="IPO: the DPO margin regressed onto 1 / (2 beta)",
    ),
    Method(
        "simpo",
        f"{_OFF}:simpo",
        fields=("simpo_beta", "simpo_margin") + _PAIR_FIELDS,
        color="#999933",
        marker=">",
        description="SimPO: reference-free, length-normalised, with a target margin",
    ),
    # the rest of Table 1, trained
    Method(
        "truly",
        f"{_ON}:truly",
        _CHOSEN,
        table1_row="truly",
        fields=("chosen",),
        color="#222222",
        marker="*",
        description="truly: the model's exact n-step probability of the target states, maximised",
    ),
    Method(
        "ppo",
        f"{_ON}:ppo",
        f"{_ON}:ppo_batch",
        needs_reference=True,
        on_policy=True,
        table1_row="PPO",
        fields=("ppo_episodes", "ppo_epochs", "ppo_clip", "ppo_kl", "horizon", "gamma"),
        color="#D55E00",
        marker="X",
        description="PPO: on-policy rollouts, the MDP's rewards (a lake: 1 on reaching G), KL penalty to theta_0",
    ),
    Method(
        "dpo_online",
        f"{_ON}:dpo_online",
        f"{_ON}:dpo_online_batch",
        needs_reference=True,
        on_policy=True,
        table1_row="DPO online",
        fields=("dpo_beta", "pairs", "horizon", "gamma"),
        color="#56B4E9",
        marker="v",
        description="online DPO: pairs sampled from the current policy, labelled by the exact return",
    ),
    # outside the paper: never enters a verdict
    Method(
        "grpo",
        f"{_ON}:grpo",
        f"{_ON}:grpo_batch",
        on_policy=True,
        fields=(
            "grpo_group",
            "grpo_beta",
            "grpo_clip",
            "grpo_iterations",
            "grpo_loss_type",
            "grpo_kl_correction",
            "horizon",
        ),
        color="#882255",
        marker="P",
        description="GRPO: group-relative advantages of G rollouts, averaged as TRL's loss_type='grpo' "
        "(grpo_loss_type; TRL 1.16's own default is 'dapo')",
    ),
    Method(
        "kto",
        f"{_OFF}:kto",
        needs_reference=True,
        fields=("kto_beta", "kto_desirable_weight", "kto_undesirable_weight") + _PAIR_FIELDS,
        color="#AA4499",
        marker="h",
        description="KTO: chosen desirable, rejected undesirable, unpaired, against the batch's KL estimate",
    ),
    Method(
        "rloo",
        f"{_ON}:rloo",
        f"{_ON}:rloo_batch",
        needs_reference=True,
        on_policy=True,
        fields=("rloo_k", "rloo_beta", "rloo_clip", "horizon"),
        color="#661100",
        marker="p",
        description="RLOO: k rollouts per start, leave-one-out baseline, KL penalty in the reward (TRL's RLOOTrainer)",
    ),
)

for _method in BUILTIN_METHODS:
    register_method(_method, replace=True)
METHODS.seal_builtins()
