"""The built-in scenarios, as data: the field's known phenomena and the IFT paper's own claims, each with its
citation (registered when ``frozenlake_ift.phenomena`` is imported)."""

from __future__ import annotations

from .core import Budget, Expectation, Run, Scenario, Term, register_scenario

_RAZIN = (
    "Razin, Malladi, Bhaskar, Chen, Arora, Hanin. Unintentional Unalignment: Likelihood Displacement in Direct "
    "Preference Optimization. ICLR 2025 (arXiv 2410.08847)"
)
_AZAR = (
    "Azar, Rowland, Piot, Guo, Calandriello, Valko, Munos. A General Theoretical Paradigm to Understand Learning "
    "from Human Preferences. AISTATS 2024 (arXiv 2310.12036), Sec. 4"
)
_XU = (
    "Xu, Fu, Gao, Ye, Liu, Mei, Wang, Yu, Wu. Is DPO Superior to PPO for LLM Alignment? A Comprehensive Study. "
    "ICML 2024 (arXiv 2404.10719), Sec. 4"
)
_TAJWAR = (
    "Tajwar, Singh, Sharma, Rafailov, Schneider, Xie, Ermon, Finn, Kumar. Preference Fine-Tuning of LLMs Should "
    "Leverage Suboptimal, On-Policy Data. ICML 2024 (arXiv 2404.14367)"
)
_HUA = (
    "Hua, Wu, Li, Zhou, Liu, Zhou, Dai. Intuitive Fine-Tuning: Towards Simplifying Alignment into a Single "
    "Process. ACL 2025 (arXiv 2405.11870), Sec. 5.3 and Table 1"
)
BANDIT = "bandit:1,0.5,0"
BANDIT_BETAS = (0.1, 0.5, 1.0, 5.0)


def _bandit_expectations() -> tuple[Expectation, ...]:
    out = []
    for b in BANDIT_BETAS:
        run = f"beta={b:g}"
        out += [
            Expectation(
                f"beta {b:g}: DPO drives the rejected arm's probability to 0 (below 1e-3; theta_0 gives it 1/3)",
                Term(run, "dpo", "rejected_prob"),
                "<",
                1e-3,
            ),
            Expectation(
                f"beta {b:g}: IPO keeps more of it than DPO",
                Term(run, "ipo", "rejected_prob"),
                ">",
                Term(run, "dpo", "rejected_prob"),
            ),
            Expectation(
                f"beta {b:g}: IPO's log-ratio margin settles at 1/(2 beta) = {1 / (2 * b):g} (within 1%)",
                Term(run, "ipo", "ipo_gap"),
                "<",
                0.01,
            ),
        ]
    return tuple(out)


BUILTIN_SCENARIOS = (
    Scenario(
        "likelihood-displacement",
        "Likelihood displacement: DPO lowers the chosen trajectory too",
        _RAZIN,
        "Offline DPO on gymnasium's 4x4 lake (deterministic), chosen = pi*'s path, rejected = a second route that "
        "shares its actions: the margin grows, but both log-probabilities fall, and the mass leaves the data's "
        "actions for moves neither trajectory takes. SFT on the same chosen path raises it.",
        (Run("4x4", {"map": "4x4", "methods": ("dpo", "sft")}),),
        (
            Expectation(
                "DPO's log-probability of the chosen trajectory falls",
                Term("4x4", "dpo", "logps/chosen", "change"),
                "<",
                0.0,
            ),
            Expectation(
                "so does the rejected trajectory's",
                Term("4x4", "dpo", "logps/rejected", "change"),
                "<",
                0.0,
            ),
            Expectation(
                "while the reward margin grows",
                Term("4x4", "dpo", "rewards/margins", "change"),
                ">",
                0.0,
            ),
            Expectation(
                "the chosen actions lose mass at the data's states",
                Term("4x4", "dpo", "chosen_mass", "change"),
                "<",
                0.0,
            ),
            Expectation(
                "the mass goes to actions outside the data (at the data's states)",
                Term("4x4", "dpo", "outside_mass", "change"),
                ">",
                0.0,
            ),
            Expectation(
                "SFT, on the same chosen trajectory, raises its probability",
                Term("4x4", "sft", "chosen_prob", "change"),
                ">",
                0.0,
            ),
        ),
        curves=(
            ("4x4", "dpo", "logps/chosen"),
            ("4x4", "dpo", "logps/rejected"),
            ("4x4", "dpo", "rewards/margins"),
        ),
    ),
    Scenario(
        "dpo-vs-ipo",
        "DPO overfits a deterministic preference; IPO does not",
        _AZAR,
        "The IPO paper's bandit: 3 arms, theta_0 exactly uniform, one pair (the best arm over the second), Adam "
        "lr 0.05. DPO's loss keeps falling only by driving the rejected arm to 0, whatever beta; IPO regresses the "
        "log-ratio margin onto 1/(2 beta) and stops there.",
        tuple(
            Run(
                f"beta={b:g}",
                {"env": BANDIT, "base": "uniform", "lr": 0.05, "methods": ("dpo", "ipo"), "dpo_beta": b, "ipo_beta": b},
            )
            for b in BANDIT_BETAS
        ),
        _bandit_expectations(),
        curves=(("beta=0.1", "dpo", "logps/rejected"), ("beta=0.1", "ipo", "logps/rejected")),
        full=Budget(10, 20000, 200),
        small=Budget(3, 200, 50),
    ),
    Scenario(
        "outside-data",
        "DPO puts mass on moves outside the data; PPO does not",
        _XU,
        "On gymnasium's 4x4 lake, offline DPO on the chosen / rejected pair against PPO trained by reward from its "
        "own rollouts (the same theta_0, a KL penalty to it): DPO's policy spends its visits on moves that neither "
        "trajectory of the data takes; PPO's spends less there than theta_0 did, and reaches G.",
        (Run("4x4", {"map": "4x4", "methods": ("dpo", "ppo")}),),
        (
            Expectation(
                "DPO raises the share of its visits spent outside the data above theta_0's",
                Term("4x4", "dpo", "outside_occupancy", "change"),
                ">",
                0.0,
            ),
            Expectation(
                "PPO lowers it",
                Term("4x4", "ppo", "outside_occupancy", "change"),
                "<",
                0.0,
            ),
            Expectation(
                "DPO ends with more of its visits outside the data than PPO",
                Term("4x4", "dpo", "outside_occupancy"),
                ">",
                Term("4x4", "ppo", "outside_occupancy"),
            ),
            Expectation(
                "PPO reaches G more often than DPO",
                Term("4x4", "ppo", "success"),
                ">",
                Term("4x4", "dpo", "success"),
            ),
        ),
        curves=(("4x4", "dpo", "success"), ("4x4", "ppo", "success")),
        small=Budget(4, 60),
    ),
    Scenario(
        "on-policy-negatives",
        "On-policy negatives beat offline ones",
        _TAJWAR,
        "DPO on the study's two-route map with three sources of rejected trajectories: the fixed off-policy second "
        "route (App. B.2), 8 samples drawn once from theta_0 (an offline data set of the reference's own samples), "
        "and 8 samples of the current policy, drawn again every 10 steps.",
        (
            Run("fixed", {"methods": ("dpo",), "negatives": "fixed"}),
            Run("theta_0 samples", {"methods": ("dpo",), "negatives": "base"}),
            Run("on-policy", {"methods": ("dpo",), "negatives": "policy"}),
        ),
        (
            Expectation(
                "on-policy negatives reach G more often than the fixed route",
                Term("on-policy", "dpo", "success"),
                ">",
                Term("fixed", "dpo", "success"),
            ),
            Expectation(
                "and end closer to pi* (action matrix)",
                Term("on-policy", "dpo", "policy_mse_opt"),
                "<",
                Term("fixed", "dpo", "policy_mse_opt"),
            ),
            Expectation(
                "on-policy negatives end closer to theta* than theta_0's samples",
                Term("on-policy", "dpo", "param_mse"),
                "<",
                Term("theta_0 samples", "dpo", "param_mse"),
            ),
            Expectation(
                "and with a lower KL(pi* || pi_theta)",
                Term("on-policy", "dpo", "kl"),
                "<",
                Term("theta_0 samples", "dpo", "kl"),
            ),
        ),
        curves=(("fixed", "dpo", "success"), ("on-policy", "dpo", "success")),
    ),
    Scenario(
        "ift-claims",
        "The IFT paper's own toy claims",
        _HUA,
        "The default study (two-route map, base random) with the paper's four methods and Table 1's truly: the "
        "paper's Sec. 5.3 sentences, each judged on its metric, and Table 1's reading that IFT's preference "
        "estimate is closer to truly than SFT's.",
        (Run("default", {"methods": ("sft", "ift", "dpo", "orpo", "truly")}),),
        (
            Expectation(
                "IFT ends closer to the truly-trained policy than SFT (Table 1)",
                Term("default", "ift", "policy_mse_truly"),
                "<",
                Term("default", "sft", "policy_mse_truly"),
            ),
        ),
        claims=(
            "dpo-lowest:param_mse",
            "dpo-lowest:policy_mse_opt",
            "dpo-lowest:tmatrix_mse_opt",
            "ift-better:param_mse",
            "ift-better:policy_mse_opt",
            "ift-better:tmatrix_mse_opt",
            "explored-aligns",
            "explored-more",
        ),
        claims_run="default",
        curves=(("default", "dpo", "param_mse"), ("default", "sft", "param_mse"), ("default", "ift", "param_mse")),
    ),
)
for _s in BUILTIN_SCENARIOS:
    register_scenario(_s, replace=True)
