"""Ceilings on the sizes a campaign file may ask for.

Sizes past which the planner's time or memory runs away (found by probing: 30,000 categories asked
numpy for 6.7 GiB, six objectives' hypervolume ran out of memory); no lab campaign comes near them.
"""

MAX_PARAMETERS = 64  # each searched one is an input of the planner's model: 5,000 took 50 s and 1 GB per ask
MAX_EXPERIMENTS = 20_000  # the planner's GP is exact over every measured experiment: 8 n^2 bytes, 3.2 GB at 20,000
MAX_CATEGORIES = 100  # values of one categorical parameter (each one model dimension)
MAX_LEVELS = 1000  # levels of one discrete parameter
MAX_OBJECTIVES = 4  # the hypervolume's cost grows steeply with the number of objectives
MAX_SNAPPED = 12  # integer or discrete parameters in constraints: 2**12 roundings are tried at most
MAX_CONSTRAINTS = 50  # each is checked at every candidate point (200 took minutes per proposal)
MAX_OUTCOME_CONSTRAINTS = 16  # each outcome is one more GP to fit (200 took minutes per proposal)
MAX_CALIBRATED = 10  # settings fitted to the data: the search and its curvature grow with their square
MAX_READING_MS = 600_000  # one well's scans, integration time x averages: 10 min
