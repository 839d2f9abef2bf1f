"""A plate reader driven through PyLabRobot's plate-reader front end (``pylabrobot.plate_reading.PlateReader``).

The campaign file names the backend (``instruments.spectrometer.pylabrobot.backend``): a class of
``pylabrobot.plate_reading`` (``CLARIOstarBackend``, ``PlateReaderChatterboxBackend``, ...) or, for a
lab's own, ``module:Class`` (a ``PlateReaderBackend`` subclass); ``backend_settings`` are its keyword
arguments. The driver reads absorbance at each of the section's ``wavelengths_nm`` over the whole plate
(some backends, the CLARIOstar's among them, read only whole plates) and returns the requested wells.

PyLabRobot is asynchronous. Every coroutine of one driver runs on one event loop that the driver owns,
on a thread of its own: the backend's connection (USB, serial) belongs to that loop, and the caller
may be a Prefect task whose thread has a loop of its own, where ``asyncio.run`` would refuse.

No gripper reaches the reader: a person carries the plate (``HandedPlate``; the loop asks before each
read). ``read_wells`` closes the reader's drawer on the plate, reads, and opens it again for the person.
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
import difflib
import importlib
import inspect
import math
import numbers
import textwrap
import threading
from datetime import datetime, timezone
from typing import Any, Coroutine, Sequence

import numpy as np
import pylabrobot.plate_reading as plate_reading
from pylabrobot.plate_reading import PlateReader
from pylabrobot.plate_reading.backend import PlateReaderBackend

from instruments.errors import InstrumentError
from instruments.pylabrobot_reader.handoff import HandedPlate
from instruments.plate_readers.verbs import PlateReaderVerbs
from instruments.pylabrobot_reader.plate import build_plate, plate_definition
from instruments.roles import Spectrum

#: how long a backend may take to set up (connect, home the drawer) [s]
SETUP_TIMEOUT_S = 120.0
#: how long one plate may take, every wavelength and the drawer included [s]
READ_TIMEOUT_S = 1800.0
#: how long opening, closing or stopping the reader may take [s]
MOVE_TIMEOUT_S = 120.0
#: how long releasing a backend whose setup failed may take [s] (its connection may be dead already)
RELEASE_TIMEOUT_S = 10.0
#: how long the driver's event loop may take to cancel what still runs on it when the driver stops [s]
CANCEL_TIMEOUT_S = 5.0
#: the end of a plate reader's photometric range [AU]: readings at or above it are flagged saturated
#: (the CLARIOstar and SpectraMax readers report up to 4 OD)
MAX_ABSORBANCE = 4.0
ROWS = "ABCDEFGHIJKLMNOP"


def available_backends() -> list[str]:
    """Names of the plate-reader backend classes ``pylabrobot.plate_reading`` offers that read absorbance, sorted."""
    return sorted(name for name, value in vars(plate_reading).items()
                  if inspect.isclass(value) and issubclass(value, PlateReaderBackend) and not inspect.isabstract(value)
                  and absorbance_problem(value) is None)


def backend_class(name: str, who: str) -> type:
    """The backend class ``name`` names (see the module docstring); one-line ``InstrumentError`` otherwise,
    also for a backend that cannot read absorbance as PyLabRobot's front end asks (``absorbance_problem``)."""
    if ":" in name:
        module_name, _, class_name = name.partition(":")
        if not module_name or not class_name.isidentifier():
            raise InstrumentError(f"{who}: backend {name!r} is not module:Class",
                                  hint="give module:Class of a PlateReaderBackend subclass importable here")
        try:
            found = getattr(importlib.import_module(module_name), class_name)
        except Exception as err:  # a lab's module may fail in any way as it is imported
            text = " ".join(str(err).split())
            raise InstrumentError(f"{who}: cannot import the backend {name!r} ({type(err).__name__}: {text})",
                                  hint="give module:Class of a PlateReaderBackend subclass importable here") from None
    else:
        found = getattr(plate_reading, name, None)
    if not (inspect.isclass(found) and issubclass(found, PlateReaderBackend)):
        names = available_backends()
        close = difflib.get_close_matches(name, names, n=1, cutoff=0.6)
        raise InstrumentError(f"{who}: {name!r} is not a PyLabRobot plate-reader backend"
                              + (f" (did you mean {close[0]}?)" if close else ""),
                              hint=f"set pylabrobot.backend to one of: {', '.join(names)}; or module:Class for your own")
    problem = "is abstract (PyLabRobot's base class, not a reader)" if inspect.isabstract(found) \
        else absorbance_problem(found)
    if problem:
        raise InstrumentError(f"{who}: backend {name} {problem}", hint="set pylabrobot.backend to a reader that reads "
                                                                      f"absorbance: {', '.join(available_backends())}")
    return found


def absorbance_problem(backend: type) -> str | None:
    """Why ``backend``'s ``read_absorbance`` cannot serve PyLabRobot's ``PlateReader.read_absorbance``, which
    calls it with ``plate``, ``wells`` and ``wavelength`` keywords; None when it can. Checked when the file is
    read, so that a fluorescence-only reader or one whose method takes other arguments (the SpectraMax
    backends' ``wavelengths``) is refused before the robot makes a plate that nothing can read."""
    method = getattr(backend, "read_absorbance", None)
    try:
        parameters = list(inspect.signature(method).parameters.values())[1:]  # after self
    except (TypeError, ValueError):
        return "has no read_absorbance method"
    if not any(p.kind is p.VAR_KEYWORD for p in parameters):
        names = {p.name for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
        required = [p.name for p in parameters if p.default is p.empty
                    and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
        if not {"plate", "wells", "wavelength"} <= names or set(required) - {"plate", "wells", "wavelength"}:
            shown = ", ".join([p.name for p in parameters][:3]) + (", ..." if len(parameters) > 3 else "")
            return (f"reads absorbance with ({shown}), not with the (plate, wells, wavelength) that PyLabRobot's "
                    "PlateReader passes")
    if _only_raises_not_implemented(method):
        return "cannot read absorbance (its read_absorbance raises NotImplementedError)"
    return None


def _only_raises_not_implemented(function: Any) -> bool:
    """Whether ``function``'s body, its docstring aside, is one ``raise NotImplementedError(...)``."""
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(function)))
    except (OSError, TypeError, SyntaxError):  # no source to read (a compiled backend): assume it reads
        return False
    definition = tree.body[0]
    if not isinstance(definition, (ast.FunctionDef, ast.AsyncFunctionDef)):
        return False
    body = [s for s in definition.body if not (isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant))]
    if len(body) != 1 or not isinstance(body[0], ast.Raise) or body[0].exc is None:
        return False
    raised = body[0].exc.func if isinstance(body[0].exc, ast.Call) else body[0].exc
    return isinstance(raised, ast.Name) and raised.id == "NotImplementedError"


class _LoopThread:
    """One asyncio event loop running on a daemon thread; ``run`` waits for a coroutine on it."""

    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name=name, daemon=True)
        self.thread.start()

    def run(self, coroutine: Coroutine[Any, Any, Any], timeout_s: float) -> Any:
        """The coroutine's result; ``TimeoutError`` (the coroutine cancelled) after ``timeout_s`` [s]."""
        future = asyncio.run_coroutine_threadsafe(coroutine, self.loop)
        try:
            return future.result(timeout_s)
        except TimeoutError:
            future.cancel()
            raise

    def stop(self) -> None:
        """Cancel what still runs on the loop (a coroutine that timed out), stop it and end its thread."""
        with contextlib.suppress(Exception):  # a loop that a backend blocks never answers: left to the process
            asyncio.run_coroutine_threadsafe(_cancel_the_others(), self.loop).result(CANCEL_TIMEOUT_S)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10.0)
        if not self.thread.is_alive():
            self.loop.close()


async def _cancel_the_others() -> None:
    """Cancel every other task of the running loop and wait until they ended (at most ``CANCEL_TIMEOUT_S``)."""
    others = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
    for task in others:
        task.cancel()
    if others:
        await asyncio.wait(others, timeout=CANCEL_TIMEOUT_S)


class PyLabRobotPlateReader(HandedPlate, PlateReaderVerbs):
    """``Spectrometer`` over PyLabRobot's ``PlateReader``: absorbance [AU] at ``config.wavelengths_nm`` [nm].

    ``config`` is the campaign's spectrometer section: ``pylabrobot`` (backend and its settings),
    ``wavelengths_nm``, ``blank_well`` (its reading is subtracted from every well of the plate at each
    wavelength), ``serial`` (which reader, when ``backend_settings`` has no ``device_id``).
    """

    def __init__(self, name: str, config: Any) -> None:
        self.name, self.config = name, config
        settings = getattr(config, "pylabrobot", None)
        if settings is None:
            raise InstrumentError(f"{name}: the spectrometer section has no 'pylabrobot' settings",
                                  hint="add pylabrobot: {backend: CLARIOstarBackend} (see orchestrator/spec/measurement.py)")
        self.backend_name = str(settings.backend)
        self.backend_settings = dict(settings.backend_settings)
        self._backend_class = backend_class(self.backend_name, name)
        self._reader: PlateReader | None = None
        self._loop: _LoopThread | None = None
        self._closed = False

    # -- the role's settings --------------------------------------------------------------------

    @property
    def reader_words(self) -> str:
        return f"{self.name} ({self.backend_name})"

    @property
    def wavelengths_nm(self) -> np.ndarray:
        """The campaign's ``wavelengths_nm`` [nm], in its order, shape ``(n,)``."""
        return np.asarray(self._whole_nm(), float)

    # -- connection -----------------------------------------------------------------------------

    def connect(self) -> None:
        """Build the backend and PyLabRobot's front end, set the reader up and open its drawer for a plate."""
        self._closed = False
        if self._reader is not None:
            return
        try:
            backend = self._backend_class(**self.backend_settings)
        except TypeError as err:
            signature = inspect.signature(self._backend_class.__init__)
            raise InstrumentError(f"{self.name}: backend_settings do not fit {self.backend_name}: {err}",
                                  hint=f"its settings are {signature}") from None
        except Exception as err:  # a backend checks its USB or serial library as it is built (CLARIOstar: pylibftdi)
            text = " ".join(str(err).split()) or type(err).__name__
            raise InstrumentError(f"{self.name}: cannot build the backend {self.backend_name}: "
                                  f"{type(err).__name__}: {text}",
                                  hint="install what it names in this environment, or fix backend_settings") from None
        reader = PlateReader(name=self.name, size_x=0.0, size_y=0.0, size_z=0.0, backend=backend)
        self._loop = _LoopThread(f"{self.name}-pylabrobot")
        try:
            self._run("set up", reader.setup(), SETUP_TIMEOUT_S, cause=None)
            self._run("open the drawer", reader.open(), MOVE_TIMEOUT_S, cause=None)
        except InstrumentError:
            # a setup that failed half-way may hold the USB or serial port: release it, or every later
            # connect() finds the reader busy until the process ends
            with contextlib.suppress(InstrumentError):
                self._run("release the backend", backend.stop(), RELEASE_TIMEOUT_S, cause=None)
            self._loop.stop()
            self._loop = None
            raise
        self._reader = reader

    def check_ready(self) -> None:
        """Connect, and refuse now what every read would refuse: wavelengths that are not whole nanometres
        (PyLabRobot's ``read_absorbance`` takes an integer) or a plate without a labware definition."""
        self._whole_nm()
        plate_definition(self.deck, self.name)
        self.connect()
        assert self._reader is not None
        self._check_wavelengths(self._reader.backend)

    def close(self) -> None:
        """Stop the reader and its event loop; safe to call twice. Reading again needs ``connect()`` first."""
        reader, loop, self._reader, self._loop, self._closed = self._reader, self._loop, None, None, True
        if reader is None or loop is None:
            return
        try:
            self._run_on(loop, "stop", reader.stop(), MOVE_TIMEOUT_S, cause=None)
        finally:
            loop.stop()

    def health(self) -> dict[str, Any]:
        reader = self._reader
        return {"name": self.name, "connected": reader is not None, "backend": self.backend_name,
                "setup_finished": bool(reader is not None and reader.setup_finished),
                "wavelengths_nm": [float(w) for w in self.wavelengths_nm]}

    def info(self) -> dict[str, Any]:
        """Identity: ``kind`` real, the backend as the model, the reader's ``device_id`` (or the section's serial)."""
        serial = self.backend_settings.get("device_id") or getattr(self.config, "serial", None)
        return {"name": self.name, "kind": "real", "model": self.backend_name,
                "serial": None if serial is None else str(serial), "host": None, "firmware": None}

    # -- acquisition ----------------------------------------------------------------------------

    def read_wells(self, wells: Sequence[str]) -> list[Spectrum]:
        """Absorbance [AU] of each label (``"P1-A1"``; one plate per call) at each wavelength, in order.

        The whole plate is read once per wavelength through ``PlateReader.read_absorbance``; the blank
        well's reading, when the section names one, is subtracted. A reading the backend leaves out (None)
        or cannot make is NaN (the loop records that well as an instrument failure).
        """
        if self._closed:
            raise InstrumentError(f"{self.name}: read after close()", hint="call connect() again before reading")
        wavelengths = self._whole_nm()
        plate_label, positions = self._positions(wells)
        self.connect()
        assert self._reader is not None
        load_name, found = plate_definition(self.deck, self.name)
        plate = build_plate(plate_label, load_name, found)
        for child in list(self._reader.children):  # the plate read before: carried out by the person
            self._reader.unassign_child_resource(child)
        self._reader.assign_child_resource(plate)
        results = self._run(f"read plate {plate_label}", self._read_plate(wavelengths), READ_TIMEOUT_S)
        try:
            grids = [_grid(results_at, w) for results_at, w in zip(results, wavelengths)]
        except ValueError as err:
            raise InstrumentError(f"{self.name}: read plate {plate_label} ({self.backend_name}): {err}",
                                  cause="reader_error",
                                  hint="a backend's read_absorbance returns a list of {wavelength, data: rows of "
                                       "numbers}; check the backend and the reader") from None
        blank = self._blank(grids, plate_label)
        at = datetime.now(timezone.utc)
        spectra = []
        for label, (row, column) in zip(wells, positions):
            raw = np.array([_value(grid, row, column) for grid in grids])
            values = raw - blank if blank is not None else raw
            meta = {"backend": self.backend_name, "plate": plate_label, "plate_labware": load_name,
                    "raw_values": _json(raw), "blank_well": getattr(self.config, "blank_well", None),
                    "blank_values": None if blank is None else _json(blank),
                    "temperature_c": _temperature(results), "integration_time_ms": self.integration_time_ms,
                    "averages": self.averages}
            spectra.append(Spectrum(well=label, kind="absorbance", wavelengths_nm=np.asarray(wavelengths, float),
                                    values=values, saturated=bool(np.nanmax(raw, initial=0.0) >= MAX_ABSORBANCE),
                                    instrument=self.name, timestamp=at, meta=meta))
        return spectra

    # -- internals ------------------------------------------------------------------------------

    async def _read_plate(self, wavelengths: list[int]) -> list[list[dict]]:
        """Drawer in, one whole-plate read per wavelength, drawer out for the person (after a failed read too:
        the person takes the plate out before the next batch)."""
        reader = self._reader
        assert reader is not None
        await reader.close()
        try:
            results = [await reader.read_absorbance(wavelength=w, use_new_return_type=True) for w in wavelengths]
        except BaseException:
            with contextlib.suppress(Exception):  # the read's own error is the one to report
                await reader.open()
            raise
        await reader.open()
        return results

    def _check_wavelengths(self, backend: Any) -> None:
        """Refuse now wavelengths the set-up reader says it cannot read: a filter reader's filters (PyLabRobot's
        Byonoy backends read them at setup: ``available_wavelengths``) or a monochromator's range (BioTek:
        ``abs_wavelength_range``). Other backends say nothing, and refuse at the first read."""
        wavelengths, filters, span = self._whole_nm(), None, None
        with contextlib.suppress(Exception):  # a property that raises until the reader tells it: nothing to check
            filters = [int(f) for f in getattr(backend, "available_wavelengths", None) or []]
        with contextlib.suppress(Exception):
            low, high = getattr(backend, "abs_wavelength_range")
            span = (int(low), int(high))
        missing = [w for w in wavelengths if w not in filters] if filters else []
        if missing:
            raise InstrumentError(f"{self.name}: {self.backend_name} has no filter at {', '.join(map(str, missing))} "
                                  f"nm (its filters: {', '.join(map(str, filters))} nm)",
                                  hint="set wavelengths_nm to wavelengths of its filters")
        outside = [w for w in wavelengths if not span[0] <= w <= span[1]] if span else []
        if span and outside:
            raise InstrumentError(f"{self.name}: {self.backend_name} reads absorbance from {span[0]} to {span[1]} nm, "
                                  f"not at {', '.join(map(str, outside))} nm",
                                  hint=f"set wavelengths_nm within {span[0]}-{span[1]} nm")

    def _run(self, what: str, coroutine: Coroutine[Any, Any, Any], timeout_s: float,
             cause: str | None = "reader_error") -> Any:
        assert self._loop is not None
        return self._run_on(self._loop, what, coroutine, timeout_s, cause)

    def _run_on(self, loop: _LoopThread, what: str, coroutine: Coroutine[Any, Any, Any], timeout_s: float,
                cause: str | None) -> Any:
        """Run a PyLabRobot coroutine on the driver's loop; any failure is one ``InstrumentError`` line."""
        try:
            return loop.run(coroutine, timeout_s)
        except TimeoutError:
            raise InstrumentError(f"{self.name}: {what} took over {timeout_s:g} s ({self.backend_name})",
                                  cause=cause and "reader_timeout",
                                  hint="check that the reader is on, connected and not busy; then resume") from None
        except Exception as err:
            text = " ".join(str(err).split()) or type(err).__name__
            raise InstrumentError(f"{self.name}: {what} failed ({self.backend_name}): {type(err).__name__}: {text}",
                                  cause=cause, hint="check the reader and backend_settings; then resume") from None

    def _whole_nm(self) -> list[int]:
        wavelengths = getattr(self.config, "wavelengths_nm", None)
        if not wavelengths:
            raise InstrumentError(f"{self.name}: a plate reader needs wavelengths_nm",
                                  hint="set instruments.spectrometer.wavelengths_nm")
        odd = [w for w in wavelengths if float(w) != int(w)]
        if odd:
            raise InstrumentError(f"{self.name}: wavelengths_nm {', '.join(f'{w:g}' for w in odd)}: PyLabRobot "
                                  "reads whole nanometres", hint="give each wavelength as a whole number of nm")
        return [int(w) for w in wavelengths]

    def _positions(self, wells: Sequence[str]) -> tuple[str, list[tuple[int, int]]]:
        """(the one plate label, (row, column) from 0 of each well) of labels such as ``"P1-B3"``."""
        plates, positions = set(), []
        for label in wells:
            plate, _, well = str(label).partition("-")
            if not (plate[:1] == "P" and plate[1:].isdigit() and well[:1] in ROWS and well[1:].isdigit()
                    and int(well[1:]) >= 1):
                raise InstrumentError(f"{self.name}: {label!r} is not a well label such as P1-A1",
                                      hint="read the labels of a plate plan (PlatePlan.label)")
            plates.add(plate)
            positions.append((ROWS.index(well[0]), int(well[1:]) - 1))
        if len(plates) != 1:
            raise InstrumentError(f"{self.name}: one read takes the wells of one plate, not of {sorted(plates)}",
                                  hint="read each plate's wells in a call of their own")
        return plates.pop(), positions

    def _blank(self, grids: list[list[list[Any]]], plate: str) -> np.ndarray | None:
        """The blank well's reading at each wavelength [AU], or None when the section names no blank."""
        well = getattr(self.config, "blank_well", None)
        if not well:
            return None
        blank = np.array([_value(grid, ROWS.index(well[0]), int(well[1:]) - 1) for grid in grids])
        if not np.isfinite(blank).all():
            raise InstrumentError(f"{self.name}: the blank well {plate}-{well} gave no reading",
                                  cause="reader_blank", hint=f"fill {well} of every plate with the blank solvent")
        return blank


def _grid(results: Any, wavelength: int) -> list[list[Any]]:
    """The rows x columns readings at ``wavelength`` from ``read_absorbance``'s list of measurements (one
    without a ``wavelength`` is taken as this one); ``ValueError`` saying what came instead."""
    if not isinstance(results, list):
        raise ValueError(f"read_absorbance returned {type(results).__name__}, not a list of measurements")
    measurements = [r for r in results if isinstance(r, dict)]
    for measurement in measurements:
        if measurement.get("wavelength") in (wavelength, None):
            data = measurement.get("data")
            if not isinstance(data, list) or not all(isinstance(row, list) for row in data):
                raise ValueError(f"its measurement at {wavelength} nm has no rows of data ({type(data).__name__})")
            return data
    given = sorted({str(m.get("wavelength")) for m in measurements})
    raise ValueError(f"no measurement at {wavelength} nm" + (f" (it gave {', '.join(given)} nm)" if given else ""))


def _value(grid: list[list[Any]], row: int, column: int) -> float:
    """The reading at (row, column); NaN where the backend gave none, or something that is not a number."""
    try:
        value = grid[row][column]
    except IndexError:
        return math.nan
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return math.nan
    return float(value)


def _temperature(results: list[list[dict]]) -> float | None:
    temperatures = [r.get("temperature") for measurements in results for r in measurements]
    known = [float(t) for t in temperatures if isinstance(t, (int, float)) and math.isfinite(t)]
    return known[-1] if known else None


def _json(values: np.ndarray) -> list[float | None]:
    return [float(v) if math.isfinite(v) else None for v in values]
