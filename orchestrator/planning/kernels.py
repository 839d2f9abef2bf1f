"""The GPs' covariance by name: what a campaign's ``planner.kernel`` may say and what ``auto`` means.

``rbf`` is BoTorch's, an ARD RBF with its dimension-scaled LogNormal lengthscale prior (Hvarfner
et al., ICML 2024); ``matern`` is an ARD Matern 5/2 with a Gamma prior on each lengthscale whose
mode is where the LogNormal's is (``surrogates._matern_kernel``). The default, ``auto``
(``resolve_kernel``), is ``matern`` for a campaign that starts from nothing and ``rbf`` for one
that starts from prior knowledge (an earlier campaign or a mechanistic prior mean), where
``matern`` lost the gain of the prior knowledge on the two-scale benchmark. The comparisons
behind these choices: ``bench/results/planner.md``.

Light on purpose (no torch): a campaign resolves its kernel, and a report names a fitted one,
without loading the planner's models.
"""

from __future__ import annotations

from typing import Any

#: The covariances a campaign can choose (``planner.kernel``, besides ``auto``: ``resolve_kernel``).
KERNELS = ("rbf", "matern")


def resolve_kernel(kernel: str, prior_knowledge: bool) -> str:
    """The covariance (one of ``KERNELS``) for ``planner.kernel`` ``kernel``: ``auto`` is ``rbf`` for a
    campaign with ``prior_knowledge`` (an earlier campaign's data or a prior mean), else ``matern``."""
    if kernel != "auto":
        return kernel
    return "rbf" if prior_knowledge else "matern"


def kernel_name(kernel: Any) -> str:
    """``"Matern 5/2"``, ``"RBF"`` or the class name of a fitted model's (base) kernel."""
    nu = getattr(kernel, "nu", None)
    if nu is not None:
        return f"Matern {int(2 * nu)}/2"
    return "RBF" if type(kernel).__name__ == "RBFKernel" else type(kernel).__name__
