"""What ``sdl replay`` does with a bundle it should not trust, and what a bundle must not carry.

- A zip is checked on its declared sizes (per file, together, compression ratio, number of files,
  compression method) before anything is decompressed, and read in chunks: a zip bomb is one line
  and a few MB of memory, not gigabytes.
- A bundle edited after export, its checksums fixed, is one line naming the missing key or wrong
  type, never a traceback; a hypothesis fuzz mutates its JSON files to check that.
- A bundle names no folder of the machine that wrote it, and its replay opens no store: a
  warm-started campaign replays from the earlier campaign's data that the bundle carries.
"""

from __future__ import annotations

import bz2
import io
import json
import shutil
import struct
import tempfile
import tracemalloc
import zipfile
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any

import pytest
from hypothesis import event, given
from hypothesis import strategies as st

from orchestrator.cli import main
from orchestrator.run.campaign import Campaign
from orchestrator.store.bundle import MAX_FILE_BYTES, MAX_FILES, MAX_READ_BYTES, MAX_TOTAL_BYTES
from orchestrator.store.campaign_store import CampaignStore
from tests.fuzz_settings import QUICK_SHARE, examples
from tests.test_bundle_replay import ASK_TELL, export_bundle, replay, reseal, yield_pct

EARLIER = """\
name: earlier
seed: 3
budget: {experiments: 4, batch_size: 4}
parameters:
  - {name: temperature, type: continuous, bounds: [20, 80], unit: C}
  - {name: n_mixes, type: integer, bounds: [0, 10]}
  - {name: ratio, type: continuous, bounds: [0, 1]}
objectives:
  - {name: yield_pct, direction: maximize}
"""

# Warm-started from EARLIER, with a parameter EARLIER lacks; its third batch is BoTorch's.
LATER = """\
name: later
seed: 5
budget: {experiments: 6, batch_size: 2}
parameters:
  - {name: temperature, type: continuous, bounds: [20, 80], unit: C}
  - {name: n_mixes, type: integer, bounds: [0, 10]}
  - {name: ratio, type: continuous, bounds: [0, 1]}
  - {name: solvent, type: categorical, values: [water, ethanol]}
objectives:
  - {name: yield_pct, direction: maximize}
planner: {initial_experiments: 2, num_restarts: 1, raw_samples: 16}
warm_start: {campaign: earlier, fill: {solvent: water}}
"""


def run_earlier(url: str) -> None:
    earlier = Campaign.from_text(EARLIER, store=url)
    for p in earlier.ask(4):
        earlier.tell(p.id, {"yield_pct": yield_pct(p.params)})


def run_later(url: str, warm_store: str | None = None) -> None:
    """Three batches: measured with an sd and failed; measured and pending; BoTorch's, both pending."""
    text = LATER if warm_store is None else LATER.replace("fill:", f"store: '{warm_store}', fill:")
    later = Campaign.from_text(text, store=url)
    a, b = later.ask(2)
    later.tell(a.id, {"yield_pct": yield_pct(a.params)}, uncertainty={"yield_pct": 0.5})
    later.fail(b.id, reason="bubble in well")
    c, _ = later.ask(2)
    later.tell(c.id, {"yield_pct": yield_pct(c.params)})
    assert later.ask(2)[0].info["strategy"] == "qLogEI"


@pytest.fixture(scope="module")
def warm_bundle(tmp_path_factory) -> Path:
    """The bundle (a folder) of LATER, warm-started from EARLIER in another store (which stays there: the old
    replay opened it, so these tests fail there for what they test, not for a refused warm start)."""
    folder = tmp_path_factory.mktemp("warm")
    url, earlier_url = f"sqlite:///{folder / 'later.db'}", f"sqlite:///{folder / 'earlier.db'}"
    run_earlier(earlier_url)
    run_later(url, earlier_url)
    return export_bundle((url, "later"), folder / "bundle")


@pytest.fixture(scope="module")
def ask_tell_zip(tmp_path_factory) -> Path:
    """The ASK_TELL campaign's bundle as a zip: 2 Sobol batches, nothing to learn from yet."""
    folder = tmp_path_factory.mktemp("zip")
    url = f"sqlite:///{folder / 's.db'}"
    c = Campaign.from_text(ASK_TELL.replace("initial_experiments: 4", "initial_experiments: 8"), store=url)
    for _ in range(2):
        for p in c.ask(2):
            c.tell(p.id, {"yield_pct": yield_pct(p.params)})
    return export_bundle((url, "replay-ask-tell"), folder / "bundle.zip")


def assert_one_line_refusal(code: int, out: str, err: str, *words: str) -> None:
    assert code == 2 and out == "", (code, out, err)
    assert len(err.strip().splitlines()) == 1 and err.startswith("error: ") and "Traceback" not in err, err
    for word in words:
        assert word in err, (word, err)


def rezip(source: Path, target: Path, replace: dict[str, Any] | None = None, extra: int = 0) -> Path:
    """A copy of zip ``source`` with entries replaced (name -> callable writing to the open entry, or a
    (bytes, compress_type) pair), and ``extra`` more empty files."""
    replace = replace or {}
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as new:
        for info in old.infolist():
            change = replace.get(info.filename)
            if change is None:
                new.writestr(info.filename, old.read(info))
            elif callable(change):
                with new.open(info.filename, "w") as entry:
                    change(entry)
            else:
                new.writestr(info.filename, change[0], compress_type=change[1])
        for i in range(extra):
            new.writestr(f"extra/{i}.txt", b"")
    return target


def declare(archive: Path, name: str, size: int, packed: int | None = None) -> None:
    """Rewrite the sizes that ``archive``'s central directory declares for ``name``, as a crafted zip can."""
    data = bytearray(archive.read_bytes())
    at = data.find(b"PK\x01\x02")
    while at >= 0:
        name_length = struct.unpack_from("<H", data, at + 28)[0]
        if data[at + 46:at + 46 + name_length] == name.encode():
            struct.pack_into("<I", data, at + 24, size)
            if packed is not None:
                struct.pack_into("<I", data, at + 20, packed)
            archive.write_bytes(bytes(data))
            return
        at = data.find(b"PK\x01\x02", at + 4)
    raise AssertionError(f"{name} not in {archive}")


def peak_replay_memory(path: Path, capsys) -> tuple[int, str, str, int]:
    """(exit code, stdout, stderr, peak bytes Python allocated) of ``sdl replay path``."""
    capsys.readouterr()
    tracemalloc.start()
    try:
        code = main(["replay", str(path)])
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    out, err = capsys.readouterr()
    return code, out, err, peak


# item 9: sizes ---------------------------------------------------------------------------------------


def write_zeros(total_bytes: int):
    def write(entry) -> None:
        chunk = bytes(1 << 20)
        for _ in range(total_bytes >> 20):
            entry.write(chunk)
    return write


def test_a_zip_bomb_is_refused_before_it_is_read_in_little_memory(ask_tell_zip, tmp_path, capsys):
    """256 MiB of zeros as spectra.json, deflated to about 250 KB: the old reader held all of it."""
    bomb = rezip(ask_tell_zip, tmp_path / "bomb.zip", {"spectra.json": write_zeros(256 << 20)})
    assert bomb.stat().st_size < 1 << 20
    code, out, err, peak = peak_replay_memory(bomb, capsys)
    assert peak < 16 << 20, f"peak {peak:,} bytes"
    assert_one_line_refusal(code, out, err, "spectra.json", "zip bomb")


def test_a_header_that_declares_less_than_the_entry_holds_reads_no_further(ask_tell_zip, tmp_path, capsys):
    """64 MiB of zeros declared as 1 KB: ``ZipFile.read`` decompressed all of it before cutting it to the declared
    size (the old reader held 64 MiB and more); read in chunks, no more than a chunk is decompressed."""
    archive = rezip(ask_tell_zip, tmp_path / "liar.zip", {"spectra.json": write_zeros(64 << 20)})
    declare(archive, "spectra.json", 1024)
    code, out, err, peak = peak_replay_memory(archive, capsys)
    assert peak < 16 << 20, f"peak {peak:,} bytes"
    assert_one_line_refusal(code, out, err, "spectra.json")


@pytest.mark.parametrize("name, size, packed, words", [
    ("spectra.json", MAX_FILE_BYTES + 1, MAX_FILE_BYTES // 10, ("spectra.json", f"{MAX_FILE_BYTES:,}")),
    ("events.json", MAX_READ_BYTES + 1, MAX_READ_BYTES // 10, ("events.json", f"{MAX_READ_BYTES:,}")),
])
def test_a_file_declared_larger_than_its_limit_is_refused_unread(ask_tell_zip, tmp_path, capsys, name, size, packed,
                                                                 words):
    archive = rezip(ask_tell_zip, tmp_path / "big.zip")
    declare(archive, name, size, packed)
    assert_one_line_refusal(*replay(archive, capsys), "declares", *words)


def test_files_declared_larger_together_than_the_limit_are_refused_unread(ask_tell_zip, tmp_path, capsys):
    archive = rezip(ask_tell_zip, tmp_path / "total.zip", extra=5)
    each = MAX_FILE_BYTES - 1
    names = [f"extra/{i}.txt" for i in range(5)]
    assert len(names) * each > MAX_TOTAL_BYTES
    for name in names:
        declare(archive, name, each, each // 10)
    assert_one_line_refusal(*replay(archive, capsys), "together", f"{MAX_TOTAL_BYTES:,}")


def test_a_zip_of_too_many_files_is_refused(ask_tell_zip, tmp_path, capsys):
    archive = rezip(ask_tell_zip, tmp_path / "many.zip", extra=MAX_FILES)
    assert_one_line_refusal(*replay(archive, capsys), f"more than {MAX_FILES:,} files")


def test_an_entry_compressed_otherwise_than_an_export_is_refused(ask_tell_zip, tmp_path, capsys):
    """bzip2 is decompressed without a bound per read; an export only deflates."""
    with zipfile.ZipFile(ask_tell_zip) as archive:
        spectra = archive.read("spectra.json")
    archive = rezip(ask_tell_zip, tmp_path / "bz2.zip", {"spectra.json": (spectra, zipfile.ZIP_BZIP2)})
    assert bz2.decompress(bz2.compress(spectra)) == spectra
    assert_one_line_refusal(*replay(archive, capsys), "spectra.json", "method")


def test_a_bundle_within_the_limits_still_replays(ask_tell_zip, capsys):
    code, out, _ = replay(ask_tell_zip, capsys)
    assert code == 0 and out.strip().splitlines()[-1] == "replay: 4/4 proposals identical"


# item 10a: a resealed bundle with a missing key or a wrong type ---------------------------------------


def edited(bundle: Path, target: Path, name: str, edit) -> Path:
    """A copy of folder ``bundle`` whose JSON file ``name`` went through ``edit``, its checksum fixed."""
    shutil.copytree(bundle, target)
    data = json.loads((target / name).read_text())
    edit(data)
    (target / name).write_text(json.dumps(data))
    if name != "metadata.json":
        reseal(target, name)
    return target


def first(records: list[dict], kind: str) -> dict:
    return next(r for r in records if r.get("kind") == kind)


@pytest.mark.parametrize("name, edit, words", [
    ("metadata.json", lambda m: m.update(files=5), ["'files' is the number 5"]),
    ("metadata.json", lambda m: m["files"][0].pop("sha256"), ["files[0].sha256 is missing"]),
    ("experiments.json", lambda e: e[0].pop("iteration"), ["experiments.json[0].iteration is missing"]),
    ("experiments.json", lambda e: e[1].update(sequence="2"), ["experiments.json[1].sequence is text"]),
    ("experiments.json", lambda e: e.__setitem__(0, []), ["experiments.json[0] is a list, not an object"]),
    ("events.json", lambda e: first(e, "measured")["detail"].pop("values"), ["detail.values is missing"]),
    ("events.json", lambda e: first(e, "measured")["detail"]["values"].update(yield_pct="high"),
     ["detail.values.yield_pct is text, not a finite number"]),
    ("events.json", lambda e: first(e, "proposed").update(experiment_id=[1]), ["experiment_id is a list"]),
    ("events.json", lambda e: first(e, "proposed")["detail"]["params"].pop("solvent"), ["params.solvent is missing"]),
    ("events.json", lambda e: first(e, "proposed")["detail"]["params"].update(temperature=1e300),
     ["params.temperature is 1e+300, far outside"]),
    ("events.json", lambda e: first(e, "measurement_uncertainty")["detail"].update(sd={"yield_pct": None}),
     ["detail.sd.yield_pct is null"]),
    ("warm_start.json", lambda w: w["observations"][0]["values"].update(yield_pct=None),
     ["warm_start.json.observations[0].values.yield_pct is null"]),
    ("warm_start.json", lambda w: w.pop("observations"), ["warm_start.json.observations is missing"]),
])
def test_a_resealed_bundle_with_a_missing_key_or_a_wrong_type_is_one_line(warm_bundle, tmp_path, capsys, name, edit,
                                                                          words):
    assert_one_line_refusal(*replay(edited(warm_bundle, tmp_path / "b", name, edit), capsys), *words)


def json_nodes(value: Any, path: tuple = ()) -> list[tuple]:
    """The path (keys and indices) of every value inside ``value``, ``value`` itself excluded."""
    children = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    found = []
    for key, child in children:
        found.append((*path, key))
        found.extend(json_nodes(child, (*path, key)))
    return found


REPLACEMENTS = [None, True, "x", -1, 0, 2.5, [], {}, [1], {"a": 1}]
FUZZED = ("metadata.json", "experiments.json", "events.json", "warm_start.json")
FULL_FUZZ = 50  # the default run makes 10: each clean replay fits a GP


def check_mutated_bundle_replays_or_is_one_line(bundle: Path, name: str, pick: int, change: int) -> None:
    """Delete the value at one path of ``name`` or replace it by another type; reseal; replay."""
    with tempfile.TemporaryDirectory() as folder:
        def mutate(data: Any) -> None:
            nodes = json_nodes(data)
            *parents, key = nodes[pick % len(nodes)]
            parent = data
            for step in parents:
                parent = parent[step]
            if change == len(REPLACEMENTS):
                del parent[key]
            else:
                parent[key] = REPLACEMENTS[change]

        out, err = io.StringIO(), io.StringIO()  # not capsys: one fixture for every example
        with redirect_stdout(out), redirect_stderr(err):
            code = main(["replay", str(edited(bundle, Path(folder) / "b", name, mutate))])
        out, err = out.getvalue(), err.getvalue()
    assert "Traceback" not in out + err
    lines = out.strip().splitlines()
    if code in (0, 1) and lines and lines[-1].startswith("replay: "):
        event(f"replayed, exit {code}")
        return  # a clean replay: every proposal compared (exit 1 when one differs)
    event(f"one line, exit {code}")
    assert code in (1, 2) and len(err.strip().splitlines()) == 1 and err.startswith("error: "), (code, out, err)


MUTATIONS = dict(name=st.sampled_from(FUZZED), pick=st.integers(0, 10_000), change=st.integers(0, len(REPLACEMENTS)))


@examples(FULL_FUZZ // QUICK_SHARE)
@given(**MUTATIONS)
def test_a_mutated_bundle_replays_or_is_one_line(warm_bundle, name, pick, change):
    check_mutated_bundle_replays_or_is_one_line(warm_bundle, name, pick, change)


@pytest.mark.slow
@examples(FULL_FUZZ)
@given(**MUTATIONS)
def test_a_mutated_bundle_replays_or_is_one_line_full(warm_bundle, name, pick, change):
    check_mutated_bundle_replays_or_is_one_line(warm_bundle, name, pick, change)


# item 15: a bundle is self-contained -------------------------------------------------------------------


def test_a_bundle_names_no_folder_of_the_machine_that_ran_it(tmp_path):
    """A run records the path of its campaign file (``sdl resume`` reads it from the store); the bundle keeps
    the file's name only."""
    machine_folder = tmp_path / "home" / "alice" / "lab"
    machine_folder.mkdir(parents=True)
    (machine_folder / "my_campaign.yaml").write_text(ASK_TELL)
    url = f"sqlite:///{tmp_path / 's.db'}"
    c = Campaign.from_yaml(machine_folder / "my_campaign.yaml", store=url)
    # what the flow records when a run starts (orchestrator/prefect/flows.py), a Windows path as well
    for source in (machine_folder / "my_campaign.yaml", r"C:\Users\alice\lab\my_campaign.yaml"):
        c.store.set_campaign_status(c.info.id, "running", dry_run=True, source=str(source), locks={})
    for p in c.ask(2):
        c.tell(p.id, {"yield_pct": yield_pct(p.params)})
    bundle = export_bundle((url, "replay-ask-tell"), tmp_path / "bundle")
    for file in bundle.rglob("*"):
        if file.is_file():
            text = file.read_text()
            assert str(tmp_path) not in text and "alice" not in text, file
    events = json.loads((bundle / "events.json").read_text())
    assert [e["detail"]["source"] for e in events if e["kind"] == "campaign_running"] == ["my_campaign.yaml"] * 2
    # the store itself keeps the full path, for sdl resume
    assert CampaignStore(url).events(c.info.id, "campaign_running")[0]["detail"]["source"] == str(
        machine_folder / "my_campaign.yaml")


@pytest.mark.parametrize("earlier_store", ["same", "other"])
def test_a_warm_started_campaign_replays_from_its_bundle_alone(tmp_path, capsys, earlier_store):
    """The earlier campaign's store is gone when the bundle is replayed elsewhere: nothing opens it (nor
    creates it again), and the proposals repeat from the data the bundle carries."""
    url = f"sqlite:///{tmp_path / 'later.db'}"
    earlier_url = url if earlier_store == "same" else f"sqlite:///{tmp_path / 'earlier.db'}"
    run_earlier(earlier_url)
    run_later(url, None if earlier_store == "same" else earlier_url)
    (tmp_path / "out").mkdir()
    bundle = export_bundle((url, "later"), tmp_path / "out" / "bundle.zip")
    elsewhere = shutil.copy(bundle, tmp_path / "bundle.zip")
    for store in {tmp_path / "later.db", tmp_path / "earlier.db"}:
        store.unlink(missing_ok=True)
    shutil.rmtree(tmp_path / "out")
    code, out, err = replay(elsewhere, capsys)
    assert code == 0, out + err
    assert "warm start: 4 earlier observation(s) of campaign 'earlier'" in out and "no store is opened" in out
    assert out.strip().splitlines()[-1] == "replay: 6/6 proposals identical"
    assert not (tmp_path / "later.db").exists() and not (tmp_path / "earlier.db").exists()
    with zipfile.ZipFile(elsewhere) as archive:
        carried = json.loads(archive.read("warm_start.json"))
    assert carried["campaign"] == "earlier" and len(carried["observations"]) == 4
    assert {o["params"]["solvent"] for o in carried["observations"]} == {"water"}  # mapped as the run maps them


def test_a_warm_start_bundle_without_its_data_is_refused_without_opening_a_store(tmp_path, capsys):
    """A bundle written before bundles carried the warm start: its campaign file names a store that is there,
    and replay still opens none."""
    url, earlier_url = f"sqlite:///{tmp_path / 'later.db'}", f"sqlite:///{tmp_path / 'earlier.db'}"
    run_earlier(earlier_url)
    run_later(url, earlier_url)
    bundle = export_bundle((url, "later"), tmp_path / "bundle")
    (bundle / "warm_start.json").unlink(missing_ok=True)
    meta = json.loads((bundle / "metadata.json").read_text())
    meta["files"] = [f for f in meta["files"] if f["path"] != "warm_start.json"]
    (bundle / "metadata.json").write_text(json.dumps(meta))
    assert_one_line_refusal(*replay(bundle, capsys), "warm-starts from campaign 'earlier'", "no warm_start.json",
                            "opens no store")


def test_a_bundle_whose_warm_start_cannot_be_read_is_not_written(tmp_path, capsys):
    url, earlier_url = f"sqlite:///{tmp_path / 'later.db'}", f"sqlite:///{tmp_path / 'earlier.db'}"
    run_earlier(earlier_url)
    run_later(url, earlier_url)
    (tmp_path / "earlier.db").unlink()
    capsys.readouterr()
    assert main(["export", "later", "--bundle", str(tmp_path / "bundle"), "--store", url]) == 2
    out, err = capsys.readouterr()
    assert_one_line_refusal(2, out, err, "cannot bundle 'later'", "warm start", "opens no store")
    assert not (tmp_path / "bundle").exists()
