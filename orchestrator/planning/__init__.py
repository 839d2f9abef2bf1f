"""What to try next: the search space, constraints, surrogate models, acquisition and the planner (BoTorch; torch is imported only when a proposal is made)."""
