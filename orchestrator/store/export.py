"""Experiments of a campaign as rows: one per experiment, for CSV or JSON."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from orchestrator.errors import OrchestratorError, SpecError
from orchestrator.spec.stored import read_stored_fields
from orchestrator.store.campaign_store import CampaignInfo, CampaignStore

#: ``number``: 1..n within the campaign, as a person counts; ``id``: the store's, across its campaigns, for joins
FIXED_COLUMNS = ("number", "id", "iteration", "sequence", "well", "status")
TIME_COLUMNS = ("created_at", "dispatched_at", "finished_at")


def experiment_rows(store: CampaignStore, campaign: CampaignInfo) -> tuple[list[str], list[dict[str, Any]]]:
    """(columns, rows): fixed columns, every parameter, every objective and outcome, failure reason, times."""
    experiments = store.experiments(campaign.id)
    try:
        fields = read_stored_fields(campaign.spec_yaml, source=f"stored spec of {campaign.name}")
        parameters = fields.parameter_names
        objectives = [o.name for o in fields.objectives] + fields.outcome_names  # outcome names are never objectives
    except SpecError:  # stored by a version that checked less: the data still come out, named by themselves
        parameters = list(dict.fromkeys(name for e in experiments for name in e.params))
        objectives = list(dict.fromkeys(name for e in experiments for name in (e.values or {})))
    columns = [*FIXED_COLUMNS, *parameters, *objectives, "failure_reason", *TIME_COLUMNS]
    rows = []
    for e in experiments:
        row: dict[str, Any] = {"number": e.number, "id": e.id, "iteration": e.iteration, "sequence": e.sequence, "well": e.well,
                               "status": e.status}
        row.update({p: e.params.get(p) for p in parameters})
        row.update({o: (e.values or {}).get(o) for o in objectives})
        row["failure_reason"] = e.failure_reason
        row.update({t: (getattr(e, t).isoformat() if getattr(e, t) else None) for t in TIME_COLUMNS})
        rows.append(row)
    return columns, rows


def to_csv(columns: list[str], rows: list[dict[str, Any]]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def to_json(columns: list[str], rows: list[dict[str, Any]]) -> str:
    return json.dumps([{c: r[c] for c in columns} for r in rows], indent=2)


def write_protocols(store: CampaignStore, campaign: CampaignInfo, directory: Path) -> list[Path]:
    """Write ``iteration_NNN.py`` (the protocol) and ``iteration_NNN.log`` (its run log) per iteration."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for it in store.iterations(campaign.id):
        stem = directory / f"iteration_{it['iteration']:03d}"
        stem.with_suffix(".py").write_text(it["protocol_text"], encoding="utf-8")
        stem.with_suffix(".log").write_text(it["run_log"], encoding="utf-8")
        written.append(stem.with_suffix(".py"))
    return written


def write_parquet(columns: list[str], rows: list[dict[str, Any]], path: Path) -> None:
    """The rows as one Parquet file (pyarrow): the CSV's columns, typed.

    A column Parquet cannot type as one becomes text, each value written as the CSV writes it: a mixed
    column (a categorical parameter with values ``[1, "a"]``), and an integer column with a value beyond
    int64 (an integer parameter with bounds ``[0, 1e23]``), which as text keeps every digit.
    """
    try:
        # pyarrow is optional and heavy: loaded for a Parquet export only
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError as err:  # e.g. a pyarrow built for another NumPy
        raise OrchestratorError(f"the Parquet export needs pyarrow, which cannot be imported: {err}",
                                hint="use --format csv or json, or reinstall the locked environment") from None

    def column(values: list[Any]) -> Any:
        try:
            return pa.array(values)
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):  # mixed types, or an int beyond int64
            return pa.array([None if v is None else str(v) for v in values])

    pq.write_table(pa.table({c: column([r[c] for r in rows]) for c in columns}), path)
