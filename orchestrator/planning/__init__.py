"""What to try next: the search space, constraints, surrogate models, acquisition and the planner (BoTorch; torch is imported only when a proposal is made)."""

import warnings

# gpytorch still calls torch.jit.script, which newer torch marks deprecated on every import; set here, before any
# planning module can import gpytorch.
warnings.filterwarnings("ignore", message=r"`torch.jit.script` is deprecated", category=FutureWarning)
