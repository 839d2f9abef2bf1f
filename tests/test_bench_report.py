"""Merging the --json files of bench/planner_suite.py: seeds split across runs, and a method rerun."""

from __future__ import annotations

import math

from bench.planner_suite import median_ratio_interval, merge_results, paired_signs, print_report, printed_scores


def test_split_seeds_are_joined_and_a_rerun_method_replaces_its_earlier_scores(capsys):
    first = {"seeds": [0, 1], "regret": {"branin": {"ours": [0.5, 0.4], "ax": [0.3, 0.2], "baybe": [0.6, 0.7]}}}
    second = {"seeds": [2, 3], "regret": {"branin": {"ours": [0.1, 0.2], "ax": [0.9, 0.8], "baybe": [0.5, 0.5]}}}
    rerun = {"seeds": [0, 1, 2, 3], "regret": {"branin": {"ours": [0.01, 0.02, 0.03, 0.04]}}}
    notes: list[str] = []
    merged = merge_results([first, second], notes.append)
    assert merged["regret"]["branin"] == {"ours": [0.5, 0.4, 0.1, 0.2], "ax": [0.3, 0.2, 0.9, 0.8],
                                          "baybe": [0.6, 0.7, 0.5, 0.5]}
    assert notes == []
    merged = merge_results([first, second, rerun], notes.append)
    assert merged["regret"]["branin"]["ours"] == [0.01, 0.02, 0.03, 0.04]
    assert merged["regret"]["branin"]["ax"] == [0.3, 0.2, 0.9, 0.8]
    print_report(merged, ["ax", "baybe"])
    row = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("branin"))
    # medians: ours 0.025, ax 0.55, baybe 0.55 -> ours/better = 0.025 / 0.55
    assert row.split()[-1] == f"{0.025 / 0.55:.3g}"


def test_a_method_missing_seeds_is_reported_as_unpaired():
    partial = {"seeds": [0, 1, 2], "regret": {"hartmann6": {"ours": [1.0, 2.0, 3.0], "ax": [1.5]}}}
    notes: list[str] = []
    merged = merge_results([partial], notes.append)
    ax = merged["regret"]["hartmann6"]["ax"]
    assert ax[0] == 1.5 and all(math.isnan(v) for v in ax[1:])
    assert notes == ["note: hartmann6: ax has 1 of 3 seeds; its median is not paired"]


def test_paired_signs_count_seeds_and_give_the_exact_sign_test():
    assert paired_signs([1, 2, 3, 4], [2, 3, 4, 5], higher_is_better=False) == (4, 0, 0.125)  # 2 * (1/16)
    assert paired_signs([1, 2, 3, 4], [2, 3, 4, 5], higher_is_better=True) == (0, 4, 0.125)
    better, worse, p = paired_signs([1, 5, float("nan"), 3], [2, 4, 1, 3], higher_is_better=False)
    assert (better, worse, p) == (1, 1, 1.0)  # the unscored seed and the tie are left out
    assert paired_signs([0.0] * 20, [1.0] * 20, False)[2] < 1e-5


def test_median_ratio_interval_is_a_paired_bootstrap_of_the_median_ratio():
    theirs = [float(v) for v in range(1, 31)]
    assert median_ratio_interval([0.5 * v for v in theirs], theirs) == (0.5, 0.5)  # every resample: ratio 0.5
    low, high = median_ratio_interval([v * (1.5 if i % 2 else 0.6) for i, v in enumerate(theirs)], theirs)
    assert 0.5 < low < 1.0 < high < 1.6  # half the seeds better, half worse: the interval spans 1
    assert all(math.isnan(x) for x in median_ratio_interval([1.0] * 10, [0.0] * 10))  # the peer's median is 0
    assert all(math.isnan(x) for x in median_ratio_interval([1.0], [2.0]))  # one seed: no interval


def test_a_hypervolume_is_reported_as_its_gap_to_the_reference_front():
    from simulators.benchmarks import PROBLEMS

    reference = PROBLEMS["snar"].reference_hypervolume
    hypervolumes = {"ours": [reference - 7000.0], "baybe": [reference - 4700.0]}
    scores, label, higher_is_better = printed_scores("snar", hypervolumes)
    assert scores == {"ours": [7000.0], "baybe": [4700.0]} and label == "snar [HV gap]" and not higher_is_better
    assert printed_scores("branin", {"ours": [0.1]}) == ({"ours": [0.1]}, "branin", False)
