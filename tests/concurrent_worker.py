"""One writer process of tests/test_concurrent_writers.py: ask, tell and fail on one campaign, in rounds.

    python -m tests.concurrent_worker STORE_URL CAMPAIGN_FILE LOG WORKER ROUNDS START_AT SCRIPT

``SCRIPT`` is ``mixed`` (each round one of ask / tell / fail, drawn from the worker's seed),
``tell-all`` (tell every proposed experiment the value WORKER + 1) or ``ask4`` (one ask(4)).
Every call's outcome is one JSON line in ``LOG``: what was called, on what, with what, and
whether it succeeded or the one-line message it was refused with. Work starts at ``START_AT``
(a Unix time) so that all workers begin together.
"""

from __future__ import annotations

import json
import random
import sys
import time

from orchestrator.errors import HintedError
from orchestrator.run.campaign import Campaign


def main(store: str, campaign_file: str, log: str, worker: int, rounds: int, start_at: float, script: str) -> None:
    campaign = Campaign.from_yaml(campaign_file, store=store)
    rng = random.Random(worker)
    with open(log, "a", encoding="utf-8") as out:

        def call(op: str, target: int | None, value: float | None, action) -> None:
            entry = {"worker": worker, "op": op, "id": target, "value": value}
            try:
                result = action()
                entry.update(ok=True, ids=[p.id for p in result] if op == "ask" else None)
            except HintedError as err:
                entry.update(ok=False, message=err.message)
            out.write(json.dumps(entry) + "\n")
            out.flush()

        # the batch to tell is read before the start: a worker that starts late on a loaded machine still tells
        # every experiment (and is refused), rather than finding none proposed and proving nothing
        batch = list(campaign.experiments("proposed")) if script == "tell-all" else []
        time.sleep(max(0.0, start_at - time.time()))
        if script == "ask4":
            call("ask", None, None, lambda: campaign.ask(4))
            return
        if script == "tell-all":
            for experiment in batch:
                call("tell", experiment.id, worker + 1.0, lambda e=experiment: campaign.tell(e.id, {"y": worker + 1.0}))
            return
        for _ in range(rounds):
            proposed = [e.id for e in campaign.experiments("proposed")]
            move = rng.choice(["ask", "tell", "tell", "fail"] if proposed else ["ask"])
            if move == "ask":
                call("ask", None, None, lambda: campaign.ask(rng.randint(1, 3)))
            elif move == "tell":
                target, value = rng.choice(proposed), round(rng.uniform(0, 10), 6)
                call("tell", target, value, lambda: campaign.tell(target, {"y": value}))
            else:
                target = rng.choice(proposed)
                call("fail", target, None, lambda: campaign.fail(target, f"worker {worker} saw nothing form"))


if __name__ == "__main__":
    store_url, file, log_path, who, n_rounds, start, kind = sys.argv[1:8]
    main(store_url, file, log_path, int(who), int(n_rounds), float(start), kind)
