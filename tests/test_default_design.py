"""The Sobol design a campaign gets when its file names no ``planner.initial_experiments``.

Protects: a small budget is not spent on the design (2(d+1) alone took 14 of 20 experiments for six
parameters, and every one of them for ten), a design fills whole batches, and the model takes over
with the first batch after it.
"""

from __future__ import annotations

import pytest

from orchestrator import Campaign
from orchestrator.planning.design import default_design_size


@pytest.mark.parametrize(("n_parameters", "budget", "batch_size", "expected"), [
    (3, 100, 1, 8),    # a large budget: 2(d+1)
    (3, 100, 4, 8),    # ... which is two whole batches
    (3, 20, 1, 6),     # a third of the budget
    (3, 20, 4, 4),     # a third of the budget is 6: one whole batch, not two
    (6, 20, 4, 4),
    (10, 20, 4, 4),    # 2(d+1) = 22 is more than the budget
    (3, 24, 4, 8),     # the demo's budget: 2(d+1) = 8 is a third
    (5, 24, 6, 6),
    (6, 40, 4, 12),
    (3, 5, 1, 2),      # the model's first fit needs two observations
    (3, 100, 96, 96),  # never less than one batch
])
def test_the_default_design_is_2d_plus_2_at_most_a_third_of_the_budget_in_whole_batches(
        n_parameters, budget, batch_size, expected):
    assert default_design_size(n_parameters, budget, batch_size) == expected


def _campaign_text(n_parameters: int, budget: int, batch_size: int) -> str:
    parameters = "\n".join(f"  - {{name: x{i}, type: continuous, bounds: [0, 1]}}" for i in range(n_parameters))
    return f"""\
name: default-design
seed: 3
budget: {{experiments: {budget}, batch_size: {batch_size}}}
parameters:
{parameters}
objectives:
  - {{name: y, direction: minimize}}
planner: {{num_restarts: 2, raw_samples: 32}}
"""


def _strategies(campaign: Campaign, batches: int) -> list[str]:
    """The proposal strategy of every experiment in the first ``batches`` batches, each batch told before the next."""
    strategies = []
    for _ in range(batches):
        for proposal in campaign.ask():
            strategies.append(proposal.info["strategy"])
            campaign.tell(proposal.id, {"y": sum((v - 0.3) ** 2 for v in proposal.params.values())})
    return strategies


def test_six_parameters_on_twenty_experiments_start_the_model_after_one_batch(tmp_path):
    campaign = Campaign.from_text(_campaign_text(6, 20, 4), store=f"sqlite:///{tmp_path / 'small.db'}")
    assert campaign.planner.initial_experiments == 4
    assert _strategies(campaign, 2) == ["sobol"] * 4 + ["qLogEI"] * 4


def test_a_large_budget_keeps_the_full_design(tmp_path):
    campaign = Campaign.from_text(_campaign_text(3, 60, 4), store=f"sqlite:///{tmp_path / 'large.db'}")
    assert campaign.planner.initial_experiments == 8
    assert _strategies(campaign, 3) == ["sobol"] * 8 + ["qLogEI"] * 4


def test_a_design_named_in_the_file_is_kept(tmp_path):
    text = _campaign_text(6, 20, 4).replace("planner: {", "planner: {initial_experiments: 14, ")
    campaign = Campaign.from_text(text, store=f"sqlite:///{tmp_path / 'named.db'}")
    assert campaign.planner.initial_experiments == 14
