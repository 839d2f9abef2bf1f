"""A campaign built and fed from Python: ``Campaign.create``, ``add``, ``add_dataframe``, ``to_dataframe``, ``to_yaml``.

The campaign file stays the one description of a campaign. ``create`` writes its keywords as
YAML text and parses that text as ``sdl validate`` does, so a bad keyword gives the line a bad
field of a file gives; ``to_yaml`` writes back exactly the text the store keeps, so the file
reopened with ``Campaign.from_yaml(path, store=...)`` continues the same campaign.

Measurements a lab already has come in with ``add`` (one) or ``add_dataframe`` (a pandas frame,
one row per experiment, a column per parameter and per objective or outcome). Every row is
checked before any is stored, and a bad one is one line naming its row and column; then all are
stored in one transaction (``CampaignStore.add_measured``) as ``measured`` experiments of the
campaign, which the planner learns from as from any other. They take no place in the budget
unless added with ``counts_toward_budget=True``: the budget counts the experiments the campaign
itself makes.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import yaml

from orchestrator.errors import CampaignStateError, SpecError
from orchestrator.planning.space import FEASIBILITY_TOL
from orchestrator.spec.campaign_fields import CampaignFields
from orchestrator.spec.limits import MAX_EXPERIMENTS
from orchestrator.spec.loader import parse_spec
from orchestrator.spec.parameters import Parameter
from orchestrator.store.campaign_store import PENDING, CampaignStore

if TYPE_CHECKING:
    import pandas

#: The largest magnitude a told value may have: the model squares values, and from about 1e150 that
#: overflows (every later ask failed); measured quantities are far below this.
MAX_ABS_VALUE = 1e100
#: how ``Campaign.create`` names itself in the lines of a spec it refuses
CREATED = "Campaign.create"
#: columns of ``to_dataframe`` before the parameters, and after the objectives and outcomes
LEADING_COLUMNS = ("id", "number", "iteration", "status", "source")
TRAILING_COLUMNS = ("failure_reason", "failure_kind", "well", "created_at", "dispatched_at", "finished_at")


class CampaignData:
    """``Campaign``'s verbs for data that comes from, or goes to, Python (mixed into ``Campaign``)."""

    @classmethod
    def create(cls, name: str, *, budget: Mapping[str, Any] | None = None,
               parameters: Sequence[Mapping[str, Any]] | None = None,
               objectives: Sequence[Mapping[str, Any]] | None = None,
               store: str | Mapping[str, Any] | CampaignStore | None = None, prior_mean: Any = None,
               emulate_prior: bool | None = None, **sections: Any) -> Any:
        """The campaign that a file with these sections describes, created in (or reopened from) its store.

        Each keyword is the campaign file's section of that name (``seed=3``, ``constraints=[...]``,
        ``planner={...}``, ``instruments={...}``), as mappings and lists. ``store``: a SQLAlchemy URL
        (written to the file's ``store.url``), the ``store`` section as a mapping, or a store already
        open (not written). Problems are the one-line ``SpecError`` of ``sdl validate``. Called again with
        the same sections it reopens the same campaign; ``prior_mean`` and ``emulate_prior`` as for ``from_yaml``.
        """
        given = {"name": name, "budget": budget, "parameters": parameters, "objectives": objectives, **sections}
        opened = store if isinstance(store, CampaignStore) else None
        if isinstance(store, str):
            given["store"] = {"url": store}
        elif store is not None and opened is None:
            given["store"] = store
        order = list(CampaignFields.model_fields)  # the file's own order; unknown keywords last, to be refused
        keys = [k for k in order if given.get(k) is not None] + [k for k in given if k not in order]
        text = campaign_yaml({k: _plain(given[k], k) for k in keys})
        spec = parse_spec(text, source=CREATED)
        return cls.from_text(text, store=opened or (store if isinstance(store, str) else None), prior_mean=prior_mean,
                             emulate_prior=emulate_prior, spec=spec)

    def to_yaml(self, path: str | Path) -> Path:
        """Write the campaign's file to ``path``: exactly the text the store keeps. Returns the path."""
        path = Path(path)
        path.write_text(self.info.spec_yaml, encoding="utf-8", newline="")  # newline="": the stored bytes, hash and all
        return path

    def add(self, params: Mapping[str, Any], values: Mapping[str, float], counts_toward_budget: bool = False) -> int:
        """Record one experiment made outside the campaign (``params`` by parameter, ``values`` by objective and
        optionally outcome) as measured; its id. Fixed parameters may be left out.

        ``counts_toward_budget``: it takes a place in ``budget.experiments`` (default: it does not).
        """
        if not isinstance(params, Mapping) or not isinstance(values, Mapping):
            raise CampaignStateError(f"add(params, values) takes two mappings, got {type(params).__name__} and "
                                     f"{type(values).__name__}", hint='e.g. add({"temp_c": 60}, {"yield_pct": 41.0})')
        self._refuse_unknown(params, [p.name for p in self.spec.parameters], "add() params", "a parameter")
        self._refuse_unknown(values, self._output_names(), "add() values", "an objective or outcome")
        return self._store_added([self._checked_measurement(params, values, "add()")], counts_toward_budget)[0]

    def add_dataframe(self, frame: "pandas.DataFrame", counts_toward_budget: bool = False) -> list[int]:
        """Record each row of ``frame`` (a column per parameter, objective and optionally outcome) as an experiment
        made outside the campaign, as ``add`` does; their ids, in row order.

        Every row is checked first: a bad one is one line naming its row (the frame's index) and column,
        and nothing is added.
        """
        # pandas loads here: the ask/tell loop and the sdl commands do not need it
        import pandas as pd

        if not isinstance(frame, pd.DataFrame):
            raise CampaignStateError(f"add_dataframe() takes a pandas DataFrame, got {type(frame).__name__}",
                                     hint="one row per experiment, a column per parameter and objective")
        columns = [str(c) for c in frame.columns]
        doubled = sorted({c for c in columns if columns.count(c) > 1})
        if doubled:
            raise CampaignStateError(f"add_dataframe(): column {doubled[0]!r} appears twice; keep one")
        self._refuse_unknown(columns, [p.name for p in self.spec.parameters] + self._output_names(),
                             "add_dataframe() column", "a parameter, objective or outcome")
        fixed = {p.name for p in self.spec.parameters if p.is_fixed}
        needed = [p.name for p in self.spec.parameters if p.name not in fixed] + [o.name for o in self.spec.objectives]
        missing = [name for name in needed if name not in columns]
        if missing:
            raise CampaignStateError(f"add_dataframe(): column {missing[0]!r} is missing",
                                     hint=f"the frame needs a column for each of: {', '.join(needed)}")
        outputs = set(self._output_names())
        checked = []
        for label, cells in zip(frame.index, frame.itertuples(index=False, name=None)):
            row = {column: _python_value(cell, pd) for column, cell in zip(columns, cells)}
            checked.append(self._checked_measurement({k: v for k, v in row.items() if k not in outputs},
                                                     {k: v for k, v in row.items() if k in outputs},
                                                     f"row {label!r}" if isinstance(label, str) else f"row {label}"))
        return self._store_added(checked, counts_toward_budget) if checked else []

    def to_dataframe(self) -> "pandas.DataFrame":
        """One row per experiment, in the campaign's order: ``id`` (the store's), ``number`` (1..n), ``iteration``,
        ``status``, ``source`` (``planner`` or ``added``), each parameter, each objective and outcome (NaN where
        none), ``failure_reason``, ``failure_kind``, ``well``, and the UTC times it was proposed, dispatched and
        finished."""
        # pandas loads here: the ask/tell loop and the sdl commands do not need it
        import pandas as pd

        parameters = [p.name for p in self.spec.parameters]
        outputs = self._output_names()
        rows = [{"id": e.id, "number": e.sequence + 1, "iteration": e.iteration, "status": e.status,
                 "source": e.proposal_info.get("source", "planner"),
                 **{name: e.params.get(name) for name in parameters},
                 **{name: (e.values or {}).get(name) for name in outputs},
                 "failure_reason": e.failure_reason, "failure_kind": e.failure_kind, "well": e.well,
                 "created_at": e.created_at, "dispatched_at": e.dispatched_at, "finished_at": e.finished_at}
                for e in self.experiments()]
        frame = pd.DataFrame(rows, columns=[*LEADING_COLUMNS, *parameters, *outputs, *TRAILING_COLUMNS])
        for name in outputs:
            frame[name] = frame[name].astype(float)  # None (not measured) -> NaN
        for name in ("created_at", "dispatched_at", "finished_at"):
            frame[name] = pd.to_datetime(frame[name], utc=True)
        return frame

    # checks and storing ----------------------------------------------------------------------

    def _output_names(self) -> list[str]:
        """The objectives, then the outcomes named in outcome constraints."""
        return [o.name for o in self.spec.objectives] + self.spec.outcome_names()

    def _refuse_unknown(self, names: Any, known: list[str], where: str, what: str) -> None:
        """One line for the first of ``names`` not in ``known`` (``what`` each of those is)."""
        unknown = next((n for n in names if n not in known), None)
        if unknown is not None:
            raise CampaignStateError(f"{where}: {short_repr(unknown)} is not {what} of campaign {self.spec.name!r}",
                                     hint=f"its {what.split(' ', 1)[1]} columns: {', '.join(known)}")

    def _checked_measurement(self, params: Mapping[str, Any], values: Mapping[str, Any],
                             where: str) -> tuple[dict[str, Any], dict[str, float]]:
        """(params, values) as the store keeps them, or one line naming ``where`` and the column.

        An empty (None or NaN) fixed parameter takes its value, and an empty outcome is left out, as ``tell``
        may leave it out: their columns are optional. An empty objective is refused.
        """
        checked_params = {}
        for p in self.spec.parameters:
            if p.is_fixed and _is_empty(params.get(p.name)):
                checked_params[p.name] = p.value
            elif p.name not in params:
                raise CampaignStateError(f"{where}: no value for parameter {p.name!r}",
                                         hint="give every parameter that is not fixed")
            else:
                checked_params[p.name] = parameter_value(p, params[p.name], f"{where}, column {p.name!r}")
        for constraint in self.space.all_constraints:
            if not constraint.is_satisfied(checked_params, FEASIBILITY_TOL):
                names = ", ".join(repr(n) for n in sorted(constraint.names))
                raise CampaignStateError(f"{where}, columns {names}: break the constraint {constraint.text!r}",
                                         hint="correct the row, or leave out an experiment the campaign forbids")
        objectives = [o.name for o in self.spec.objectives]
        values = {name: value for name, value in values.items() if name in objectives or not _is_empty(value)}
        absent = next((name for name in objectives if name not in values), None)
        if absent is not None:
            raise CampaignStateError(f"{where}: no value for objective {absent!r}",
                                     hint="every added experiment needs a measured value of each objective")
        return checked_params, {name: measured_value(value, f"{where}, column {name!r}")
                                for name, value in values.items()}

    def _store_added(self, rows: list[tuple[dict[str, Any], dict[str, float]]],
                     counts_toward_budget: bool) -> list[int]:
        """Store checked ``rows`` in one transaction (refused past the model's limit or, if they count, the budget)."""
        held = len(self.experiments())
        if held + len(rows) > MAX_EXPERIMENTS:
            raise CampaignStateError(f"campaign {self.spec.name!r} holds {held} experiments; {len(rows)} more would "
                                     f"pass the {MAX_EXPERIMENTS:,} the planner's model takes, nothing was added",
                                     hint="add a representative subset")
        ids = self.store.add_measured(self.info.id, rows, bool(counts_toward_budget), self.spec.budget.experiments)
        if counts_toward_budget:
            self._complete_when_spent()
        return ids

    def _complete_when_spent(self) -> None:
        """Mark the campaign completed once its budget is spent and nothing waits for a result (ask/tell: the
        closed loop's flow marks its own)."""
        if any(self.experiments(status) for status in PENDING):  # the common case, read without the whole campaign
            return
        everything = self.experiments()
        if self.remaining_budget(everything) <= 0 and not any(e.status in PENDING for e in everything):
            if self.store.complete_campaign(self.info.id, reason="budget spent"):
                self.info = dataclasses.replace(self.info, status="completed")


def campaign_yaml(sections: Mapping[str, Any]) -> str:
    """The text of a campaign file with ``sections`` (plain values), a blank line between top-level sections."""
    # flow style for the innermost lists and mappings (``bounds: [20, 100]``), as the example campaigns write them
    return "\n".join(yaml.safe_dump({key: value}, sort_keys=False, allow_unicode=True, width=100,
                                    default_flow_style=None if isinstance(value, (dict, list)) else False)
                     for key, value in sections.items())


def parameter_value(p: Parameter, value: Any, column: str) -> Any:
    """``value`` of parameter ``p`` as a proposal holds it (a float, an int, or one of ``p.values``), or one line
    naming ``column``."""
    if _is_empty(value):
        raise CampaignStateError(f"{column}: is empty (None or NaN)", hint="every parameter needs a value")
    if not p.is_numeric:
        choices = [p.value] if p.is_fixed else p.values
        match = [v for v in choices if str(v) == str(value) or (_is_number(v) and _is_number(value) and v == value)]
        if not match:
            raise CampaignStateError(f"{column}: {short_repr(value)} is not one of {short_repr(choices)}",
                                     hint="use one of the parameter's values, spelled as in the campaign")
        return match[0]
    if not _is_number(value):
        raise CampaignStateError(f"{column}: {short_repr(value)} is not a number",
                                 hint="give a number in the parameter's unit")
    number = _finite(value, column)
    if p.is_fixed:
        if number != float(p.value):
            raise CampaignStateError(f"{column}: {number:g}, but {p.name} is fixed at {p.value} in this campaign",
                                     hint="leave the column out, or add the experiment to a campaign that searches it")
        return p.value
    lower, upper = p.bounds
    if not lower <= number <= upper:
        raise CampaignStateError(f"{column}: {number:g} is outside the bounds [{lower:g}, {upper:g}]",
                                 hint="correct the value, or widen the bounds in a new campaign")
    if p.type == "integer":
        if number != round(number):
            raise CampaignStateError(f"{column}: {number:g} is not a whole number", hint="an integer parameter")
        return int(round(number))
    if p.type == "discrete":
        level = next((v for v in p.values if float(v) == number), None)
        if level is None:
            raise CampaignStateError(f"{column}: {number:g} is not one of the levels {short_repr(p.values)}",
                                     hint="use one of the parameter's values")
        return level
    return number


def measured_value(value: Any, column: str) -> float:
    """A measured objective or outcome value as a float, or one line naming ``column``."""
    if _is_empty(value):
        raise CampaignStateError(f"{column}: is empty (None or NaN)",
                                 hint="give every objective a measured value; leave out rows that have none")
    if not _is_number(value):
        raise CampaignStateError(f"{column}: {short_repr(value)} is not a number", hint="give the measured value")
    number = _finite(value, column)
    if abs(number) > MAX_ABS_VALUE:
        raise CampaignStateError(f"{column}: {number:g}; values beyond +-{MAX_ABS_VALUE:g} break the model",
                                 hint="check the units (rescale the value)")
    return number


def _finite(value: Any, column: str) -> float:
    try:
        number = float(value)
    except OverflowError:  # an int beyond float range
        number = math.inf
    if not math.isfinite(number):
        raise CampaignStateError(f"{column}: {short_repr(value)} is not a finite number", hint="give a finite number")
    return number


def _is_number(value: Any) -> bool:
    """A real number, not a bool (``float(True)`` would be 1.0) nor text (``float("60")`` would read it)."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _is_empty(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _python_value(cell: Any, pd: Any) -> Any:
    """A DataFrame cell as a plain Python value: numpy scalars unwrapped, NaN, NaT and NA as None."""
    if pd.api.types.is_scalar(cell) and pd.isna(cell):
        return None
    return cell.item() if hasattr(cell, "item") and getattr(cell, "shape", None) == () else cell


def _plain(value: Any, where: str) -> Any:
    """``value`` as YAML's plain kinds (mappings, lists, text, numbers, booleans, null), or a one-line ``SpecError``."""
    if hasattr(value, "model_dump"):  # a section built as a pydantic model
        return value.model_dump(mode="json", exclude_defaults=True)
    if isinstance(value, Mapping):
        return {k if isinstance(k, (str, int, float)) else _refused(k, where): _plain(v, f"{where}.{k}")
                for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if hasattr(value, "tolist"):  # numpy arrays and scalars
        return _plain(value.tolist(), where)
    if isinstance(value, Path):
        return str(value)
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return _refused(value, where)


def _refused(value: Any, where: str) -> Any:
    raise SpecError([f"{where}: {type(value).__name__} {short_repr(value)} cannot be written in a campaign file; "
                     "give text, numbers, lists or mappings"], CREATED)


def short_repr(value: Any) -> str:
    """``repr(value)`` cut to 60 characters (a huge int or array stays readable; the message stays one line)."""
    try:
        text = repr(value)
    except ValueError:  # an int too long to print
        text = f"<{type(value).__name__}>"
    text = " ".join(text.splitlines())  # e.g. a 2-D numpy array prints over lines
    return text if len(text) <= 60 else text[:57] + "..."
