"""One registry of the acquisition functions a campaign can pick: the schema and the dispatch read it."""

from __future__ import annotations

import subprocess
import sys
import typing
from pathlib import Path

from orchestrator.planning.acquisition_registry import ACQUISITION_CHOICES, ACQUISITIONS, DEFAULT_ACQUISITION
from orchestrator.spec.sections import PlannerSettings

REPO = Path(__file__).resolve().parents[1]


def test_every_registered_acquisition_names_a_builder_of_the_acquisition_module():
    from orchestrator.planning import acquisition  # imports torch: only this test needs it

    assert all(callable(getattr(acquisition, choice.builder, None)) for choice in ACQUISITION_CHOICES.values())


def test_the_schema_offers_exactly_the_registered_acquisitions_with_their_descriptions():
    field = PlannerSettings.model_fields["acquisition"]
    assert typing.get_args(field.annotation) == ACQUISITIONS == ("qLogEI", "qLogNEI")
    assert field.default == DEFAULT_ACQUISITION == "qLogEI"
    assert field.description == (
        "for one objective that nothing constrains: qLogEI (the best predicted value so far as the incumbent) "
        "or qLogNEI (a sampled incumbent); see orchestrator/planning/acquisition.py")


def test_the_registry_and_the_planner_settings_import_no_torch():
    code = ("import sys; import orchestrator.spec.sections; "
            "print(sorted(m for m in ('torch', 'botorch') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
