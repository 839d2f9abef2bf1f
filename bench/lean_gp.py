"""lean_gp against plain BoTorch/GPyTorch, same data in the same run, at the sizes where the planner uses it.

    .venv/bin/python bench/lean_gp.py                      # n = 50 100 250 350 500, about a minute on 2 cores
    .venv/bin/python bench/lean_gp.py --n 100 --repeats 40

Where the planner uses ``orchestrator.planning.lean_gp`` (a plain single-output ``SingleTaskGP``):
``neg_mll_closure`` for every hyperparameter fit, which runs on at most ``surrogates.EXACT_FIT_MAX``
rows (a subset above it), and ``LeanExactGP`` with ``LeanLogEI`` / ``LeanLogNEI`` for the
acquisition up to ``proposal.LEAN_POSTERIOR_MAX`` observations (timed here up to ``proposal.LOVE_ABOVE``,
where exact posteriors end, to show where that limit belongs). For each ``n`` this prints, with
one torch thread (as every proposal runs):

- ``mll``: one loss and gradient evaluation (BoTorch's own closure against ``neg_mll_closure``),
  and a whole hyperparameter fit (``fit_gpytorch_mll`` with either closure), only where ``n``
  is a size that is fitted;
- ``qLogEI grad`` / ``qLogNEI grad``: the acquisition's value and gradient at 8 restarts of
  ``q = 1`` (what ``gen_candidates_scipy`` asks for on every L-BFGS step);
- ``qLogEI pool``: the acquisition at 256 raw points without gradient (scoring the raw points);
- ``proposal``: a whole ``Planner.suggest`` of ``q = 1`` with lean_gp and with it switched off
  (``lean_gp.is_supported`` answering False, which sends both the fit and the acquisition to BoTorch).

Each per-call figure is the median of ``--repeats`` calls after one warm-up call, in ms; the
proposal the median of 3 (seconds), after a warm-up proposal. ``ratio`` is BoTorch's time over
lean_gp's (above 1: lean_gp is faster). Data: ``sum(sin(3 x))`` over 6 uniform random inputs plus
noise sd 0.05, seed 0; the GP is the planner's (``surrogates.fit_output``, Matern 5/2).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from botorch.acquisition.logei import qLogExpectedImprovement, qLogNoisyExpectedImprovement  # noqa: E402
from botorch.acquisition.objective import GenericMCObjective  # noqa: E402
from botorch.fit import fit_gpytorch_mll  # noqa: E402
from botorch.optim.closures import get_loss_closure_with_grads  # noqa: E402
from botorch.optim.utils import get_parameters  # noqa: E402
from botorch.sampling import SobolQMCNormalSampler  # noqa: E402
from gpytorch.mlls import ExactMarginalLogLikelihood  # noqa: E402

from orchestrator.planning import lean_gp, surrogates  # noqa: E402
from orchestrator.planning.acquisition import BASELINE_MAX, MC_SAMPLES  # noqa: E402
from orchestrator.planning.planner import Planner  # noqa: E402
from orchestrator.planning.proposal import LEAN_POSTERIOR_MAX, LOVE_ABOVE  # noqa: E402
from orchestrator.planning.space import SearchSpace  # noqa: E402
from orchestrator.spec.parameters import Parameter  # noqa: E402

DIM = 6
RESTARTS = 8
POOL = 256


def data(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs ``(n, DIM)`` in the unit box and values ``(n, 1)``."""
    rng = np.random.default_rng(seed)
    X = rng.random((n, DIM))
    y = np.sin(3 * X).sum(axis=1) + 0.05 * rng.standard_normal(n)
    return torch.tensor(X), torch.tensor(y).unsqueeze(-1)


def median_ms(call: Callable[[], object], repeats: int) -> float:
    """Median wall time of ``call`` in ms over ``repeats`` calls, after one warm-up call."""
    call()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


def row(what: str, n: int, plain: float, lean: float, unit: str = "ms") -> None:
    print(f"{n:>5}  {what:<22}  {plain:>10.2f}  {lean:>10.2f}  {unit:<4}  {plain / lean:>6.2f}", flush=True)


def mll_rows(X, Y, repeats: int) -> None:
    """One loss-and-gradient call, and a whole fit, with BoTorch's closure and with ``neg_mll_closure``."""
    n = X.shape[0]
    model = surrogates._single_task(X, Y, None, None, "matern")
    mll = ExactMarginalLogLikelihood(model.likelihood, model)
    mll.train()
    plain = get_loss_closure_with_grads(mll, parameters=get_parameters(mll, requires_grad=True))
    lean = lean_gp.neg_mll_closure(mll)
    row("mll loss+grad", n, median_ms(plain, repeats), median_ms(lean, repeats))

    def fit(closure_of: Callable | None) -> float:
        fresh = surrogates._single_task(X, Y, None, None, "matern")
        fresh_mll = ExactMarginalLogLikelihood(fresh.likelihood, fresh)
        fresh_mll.train()
        closure = closure_of(fresh_mll) if closure_of is not None else None
        start = time.perf_counter()
        fit_gpytorch_mll(fresh_mll, closure=closure)
        return time.perf_counter() - start

    fit(None)  # warm-up
    row("mll whole fit", n, fit(None), fit(lean_gp.neg_mll_closure), "s")


def acquisition_rows(X, Y, repeats: int) -> None:
    """qLogEI and qLogNEI value and gradient at ``RESTARTS`` points, and qLogEI on ``POOL`` raw points."""
    n = X.shape[0]
    model, _ = surrogates.fit_output(surrogates.OutputData("y", X, Y), seed=0, kernel="matern")
    lean_model = lean_gp.LeanExactGP(model)
    objective = GenericMCObjective(lambda Z, X=None: Z[..., 0])
    baseline = X[Y.squeeze(-1).argsort(descending=True)[:BASELINE_MAX]]
    best_f = Y.max()
    g = torch.Generator().manual_seed(1)
    restarts = torch.rand(RESTARTS, 1, DIM, generator=g, dtype=torch.float64)
    pool = torch.rand(POOL, 1, DIM, generator=g, dtype=torch.float64)

    def sampler() -> SobolQMCNormalSampler:
        return SobolQMCNormalSampler(sample_shape=torch.Size([MC_SAMPLES]), seed=0)

    def grad_of(acqf) -> Callable[[], object]:
        def call():
            x = restarts.clone().requires_grad_(True)
            acqf(x).sum().backward()
            return x.grad
        return call

    def pool_of(acqf) -> Callable[[], object]:
        def call():
            with torch.no_grad():
                return acqf(pool)
        return call

    ei = qLogExpectedImprovement(model, best_f=best_f, sampler=sampler(), objective=objective)
    lean_ei = lean_gp.lean_log_ei(lean_model, best_f=best_f, sampler=sampler(), objective=objective)
    row("qLogEI grad (8 x q=1)", n, median_ms(grad_of(ei), repeats), median_ms(grad_of(lean_ei), repeats))
    row("qLogEI pool (256)", n, median_ms(pool_of(ei), repeats), median_ms(pool_of(lean_ei), repeats))
    nei = qLogNoisyExpectedImprovement(model, X_baseline=baseline, prune_baseline=True, sampler=sampler(),
                                       objective=objective, cache_root=True)
    lean_nei = lean_gp.lean_log_nei(lean_model, X_baseline=baseline, prune_baseline=True, sampler=sampler(),
                                    objective=objective)
    row("qLogNEI grad (8 x q=1)", n, median_ms(grad_of(nei), repeats), median_ms(grad_of(lean_nei), repeats))


def proposal_row(X, Y, repeats: int = 3, show: bool = True) -> None:
    """Whole q = 1 proposals with lean_gp, and with ``lean_gp.is_supported`` switched off: the median of
    ``repeats`` each, in seconds."""
    n = X.shape[0]
    space = SearchSpace([Parameter(name=f"x{i}", type="continuous", bounds=(0, 1)) for i in range(DIM)])
    observations = [({f"x{i}": float(v) for i, v in enumerate(x)}, {"y": float(y)}) for x, y in zip(X, Y[:, 0])]

    def propose() -> float:
        times = []
        for _ in range(repeats):
            planner = Planner(space, "y", True, seed=0, initial_experiments=10)
            start = time.perf_counter()
            planner.suggest(observations, [], 1, n_proposed=n)
            times.append(time.perf_counter() - start)
        return statistics.median(times)

    supported = lean_gp.is_supported
    lean = propose()
    lean_gp.is_supported = lambda model: False  # the whole proposal on BoTorch and GPyTorch
    try:
        plain = propose()
    finally:
        lean_gp.is_supported = supported
    if show:
        row(f"proposal (q=1, {repeats}x)", n, plain, lean, "s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, nargs="+", default=[50, 100, 250, 350, 500])
    parser.add_argument("--repeats", type=int, default=20, help="timed calls per per-call figure")
    parser.add_argument("--no-proposal", action="store_true", help="skip the whole-proposal rows")
    args = parser.parse_args()
    torch.set_num_threads(1)
    X, Y = data(20)
    proposal_row(X, Y, repeats=1, show=False)  # warm-up: imports and first-call costs are paid once per process
    print(f"torch {torch.__version__}, one thread; fits on at most {surrogates.EXACT_FIT_MAX} rows, "
          f"lean posterior used up to {LEAN_POSTERIOR_MAX} observations (timed here up to {LOVE_ABOVE})")
    print(f"{'n':>5}  {'what':<22}  {'BoTorch':>10}  {'lean_gp':>10}  {'unit':<4}  {'ratio':>6}")
    for n in args.n:
        X, Y = data(n)
        if n <= surrogates.EXACT_FIT_MAX:
            mll_rows(X, Y, args.repeats)
        if n <= LOVE_ABOVE:
            acquisition_rows(X, Y, args.repeats)
        if not args.no_proposal:
            proposal_row(X, Y)


if __name__ == "__main__":
    main()
