"""The campaign file's sections about the lab: the instruments, the simulated lab of a dry run, and how
each objective is computed from a measured spectrum; each validated on its own."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, PositiveInt, field_validator, model_validator

from instruments.registry import all_drivers, check_driver_name
from orchestrator.spec.base import StrictModel
from orchestrator.spec.deck_section import DeckSection
from orchestrator.spec.limits import MAX_READING_MS
from orchestrator.spec.measurement import Cuvette, PyLabRobotReader, driver_problems
from simulators.faults import check_rates
from simulators.registry import SIMULATORS


class Reagent(StrictModel):
    """A stock in the reservoir: which well it sits in and how much is there [uL]."""

    well: str = Field(pattern=r"^[A-P](?:[1-9]|1[0-9]|2[0-4])$")
    stock_ul: float = Field(gt=0)


class Labware(StrictModel):
    """Opentrons labware load names; unset ones take the robot type's defaults. ``tiprack_small`` is the
    tip rack of the pipette with the smaller maximum volume, ``tiprack_large`` the other's."""

    plate: str | None = None
    reservoir: str | None = None
    tiprack_small: str | None = None
    tiprack_large: str | None = None


class LiquidHandler(StrictModel):
    """Which robot, and how parameters become volumes in a well.

    Each key of ``reagents`` is a parameter whose value is the volume [uL] of that stock;
    ``diluent`` fills every well up to ``fill_volume_ul``.
    """

    driver: str
    host: str | None = Field(default=None, description="robot address, for real drivers")
    port: int = Field(default=31950, ge=1, le=65535, description="robot HTTP API port, for real drivers")
    fill_volume_ul: float = Field(gt=0)
    well_capacity_ul: float = Field(default=360.0, gt=0)
    diluent: Reagent | None = None
    reagents: dict[str, Reagent]
    labware: Labware = Labware()
    deck: DeckSection = Field(default=DeckSection(), description="pipettes, tip racks, slots, custom labware, "
                                                                 "offsets (orchestrator/spec/deck_section.py)")
    lock: str | None = Field(default=None, max_length=80,
                             description="name of the physical robot; campaigns naming the same one never use it at once")
    run_timeout_s: float | None = Field(
        default=None, gt=0, description="most one robot run may take [s], for real drivers; unset: 60 s per "
                                        "transfer of the batch, at least 1 h")

    @field_validator("driver")
    @classmethod
    def _known_driver(cls, name: str) -> str:
        return check_driver_name(name, "liquid_handler")  # built-in and plugin drivers alike

    @field_validator("host")
    @classmethod
    def _bare_host(cls, host: str | None) -> str | None:
        """An address or name only: the driver adds the scheme, and the port is its own field."""
        if host is None:
            return host
        bare = host.split("://", 1)[-1].split("/", 1)[0]
        name, _, port = bare.partition(":")
        if bare != host or port:
            fix = f"host: {name}" + (f" and port: {port}" if port else "")
            raise ValueError(f"host {host!r} must be the robot's address alone; write {fix}")
        return host

    @model_validator(mode="after")
    def _fits_well(self) -> "LiquidHandler":
        if self.fill_volume_ul > self.well_capacity_ul:
            raise ValueError(
                f"fill_volume_ul {self.fill_volume_ul:g} exceeds well_capacity_ul {self.well_capacity_ul:g}; lower it"
            )
        return self


class Spectrometer(StrictModel):
    """Which spectrometer, how it reads, and how its dark and blank reach the beam.

    ``integration_time_ms`` [ms] and ``averages`` (scans averaged in software) set each read.
    Dark and reference spectra are retaken when older than ``dark_every_s`` / ``reference_every_s``
    [s] and whenever the integration time changes. ``dark`` says how the light is blocked for a
    dark spectrum: ``shutter`` (the spectrometer's shutter) or ``lamp`` (its light source off);
    ``manual`` (a person covers the light path) is refused, as campaigns run unattended.
    ``blank_well`` is the well of every plate that holds the blank, read as the reference.

    The rest depends on the driver (``orchestrator/spec/measurement.py``): ``wavelengths_nm`` for a plate
    reader, ``cuvette`` for a fibre spectrometer reading a cuvette station on the deck, ``reader_slot``
    for the Flex Absorbance Plate Reader, ``pylabrobot`` for a reader driven through PyLabRobot.
    """

    driver: str
    serial: str | None = None
    lock: str | None = Field(default=None, max_length=80,
                             description="name of the physical spectrometer; campaigns naming the same one never use it at once")
    wavelength_range_nm: tuple[float, float] = (400.0, 700.0)
    integration_time_ms: float = Field(default=100.0, gt=0, le=MAX_READING_MS)
    averages: PositiveInt = Field(default=1, le=1000, description="scans averaged into one reading")
    dark_every_s: float = Field(default=600.0, gt=0)
    reference_every_s: float = Field(default=1800.0, gt=0)
    dark: Literal["shutter", "lamp", "manual"] = "shutter"
    blank_well: str | None = Field(default=None, pattern=r"^[A-H](?:[1-9]|1[0-2])$")
    wavelengths_nm: list[float] | None = Field(default=None, min_length=1,
                                               description="what a plate reader reads [nm]")
    reader_slot: str | None = Field(default=None, description="Flex Absorbance Plate Reader's slot; unset: D3")
    cuvette: Cuvette | None = None
    pylabrobot: PyLabRobotReader | None = None

    @field_validator("driver")
    @classmethod
    def _known_driver(cls, name: str) -> str:
        return check_driver_name(name, "spectrometer")  # built-in and plugin drivers alike

    @field_validator("wavelengths_nm")
    @classmethod
    def _positive_wavelengths(cls, wavelengths: list[float] | None) -> list[float] | None:
        if wavelengths is not None and not all(w > 0 for w in wavelengths):
            raise ValueError(f"{wavelengths}: every wavelength must be above 0 nm")
        return wavelengths

    @model_validator(mode="after")
    def _fits_driver(self) -> "Spectrometer":
        problems = driver_problems(self, all_drivers().get(self.driver))
        if problems:
            raise ValueError("; ".join(problems))
        if self.cuvette is not None and self.blank_well is not None:
            raise ValueError("with a cuvette the reference is read on the rinse solvent in the cuvette; "
                             "remove blank_well")
        return self

    @field_validator("wavelength_range_nm")
    @classmethod
    def _ordered_range(cls, bounds: tuple[float, float]) -> tuple[float, float]:
        if not 0 < bounds[0] < bounds[1]:
            raise ValueError(f"[{bounds[0]:g}, {bounds[1]:g}] nm: give [shortest, longest], both above 0")
        return bounds

    @field_validator("dark")
    @classmethod
    def _unattended_dark(cls, how: str) -> str:
        if how == "manual":
            raise ValueError("dark: manual needs a person to cover the light path before every dark spectrum, "
                             "and campaigns run unattended; use dark: shutter or dark: lamp")
        return how

    @model_validator(mode="after")
    def _reading_time(self) -> "Spectrometer":
        scans_ms = self.integration_time_ms * self.averages
        if scans_ms > MAX_READING_MS:
            raise ValueError(f"integration_time_ms x averages is {scans_ms / 60_000:g} min per well; at most "
                             f"{MAX_READING_MS / 60_000:g} min: "
                             "lower averages or the integration time")
        return self


class Instruments(StrictModel):
    liquid_handler: LiquidHandler
    spectrometer: Spectrometer


class Simulation(StrictModel):
    """The simulator model behind the dry run, its settings and its noise."""

    model: str
    settings: dict[str, Any] = {}
    noise: dict[str, float] = {}
    faults: dict[str, float] = Field(default={}, description="fault name -> probability (simulators.faults)")
    timing: Literal["instant", "realistic"] = Field(
        default="instant", description="instant never sleeps; realistic sleeps each simulated duration x time_scale")
    time_scale: float = Field(default=1.0, ge=0, le=1, description="factor on realistic sleeps (0.05: 20x faster)")

    @field_validator("model")
    @classmethod
    def _known_model(cls, name: str) -> str:
        if name not in SIMULATORS:
            raise ValueError(f"unknown simulator {name!r}; use one of: {', '.join(sorted(SIMULATORS))}")
        return name

    @field_validator("faults")
    @classmethod
    def _known_faults(cls, rates: dict[str, float]) -> dict[str, float]:
        return check_rates(rates)


class SpectralTarget(StrictModel):
    """The target spectrum: the one a mixture gives in the simulator, or a CSV file."""

    mixture: dict[str, float] | None = None
    csv: str | None = Field(default=None, description="file with columns wavelength_nm,absorbance")

    @model_validator(mode="after")
    def _exactly_one(self) -> "SpectralTarget":
        if (self.mixture is None) == (self.csv is None):
            raise ValueError("give exactly one of 'mixture' (volumes in uL) or 'csv' (a file)")
        return self


class Analysis(StrictModel):
    """How one objective, or one outcome of an outcome constraint, is computed from a measured spectrum (see
    ``orchestrator.run.spectra_analysis``); ``objective`` names it.

    ``spectral_rmse`` needs ``target``. ``peak_wavelength`` [nm], ``peak_width`` (FWHM [nm])
    and ``peak_intensity`` take the highest peak inside ``window_nm`` after Gaussian smoothing
    (``smoothing_nm``, sigma [nm]); ``target_peak_nm`` (peak_wavelength only, implied when
    ``kind`` is left out) makes the objective ``|peak - target_peak_nm| + width_weight * FWHM``.
    ``max_reading`` is the highest smoothed value inside ``window_nm`` (e.g. for ``absorbance <= 2``).
    ``reading_at`` is the reading at ``wavelength_nm``; ``reading_ratio`` the reading at ``wavelengths_nm[0]``
    divided by the reading at ``wavelengths_nm[1]``: both work on a plate reader's few wavelengths as well.
    """

    objective: str
    kind: Literal["spectral_rmse", "peak_wavelength", "peak_width", "peak_intensity", "max_reading", "reading_at",
                  "reading_ratio"] = "spectral_rmse"
    target: SpectralTarget | None = None
    target_peak_nm: float | None = Field(default=None, gt=0)
    width_weight: float = Field(default=0.0, ge=0, description="nm of objective per nm of FWHM")
    window_nm: tuple[float, float] | None = None
    smoothing_nm: float = Field(default=4.0, ge=0)
    min_prominence: float | None = Field(default=None, gt=0, description="in the reading's units (AU, counts)")
    wavelength_nm: float | None = Field(default=None, gt=0, description="reading_at: where [nm]")
    wavelengths_nm: tuple[float, float] | None = Field(default=None, description="reading_ratio: [numerator, "
                                                                                 "denominator] [nm]")

    @model_validator(mode="before")
    @classmethod
    def _peak_target_implies_kind(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("target_peak_nm") is not None and "kind" not in data:
            return {**data, "kind": "peak_wavelength"}
        return data

    @model_validator(mode="after")
    def _settings_fit_kind(self) -> "Analysis":
        if self.kind == "spectral_rmse" and self.target is None:
            raise ValueError("kind spectral_rmse needs 'target' (a mixture in uL or a csv file)")
        if self.kind != "spectral_rmse" and self.target is not None:
            raise ValueError(f"'target' is only for kind spectral_rmse, not {self.kind}; "
                             "to aim at a peak position use target_peak_nm")
        if self.target_peak_nm is not None and self.kind != "peak_wavelength":
            raise ValueError(f"target_peak_nm only applies to kind peak_wavelength, not {self.kind}")
        if (self.kind == "reading_at") != (self.wavelength_nm is not None):
            raise ValueError("kind reading_at needs wavelength_nm, and wavelength_nm is only for reading_at")
        if (self.kind == "reading_ratio") != (self.wavelengths_nm is not None):
            raise ValueError("kind reading_ratio needs wavelengths_nm: [numerator, denominator], and "
                             "wavelengths_nm is only for reading_ratio")
        if self.wavelengths_nm is not None and (min(self.wavelengths_nm) <= 0
                                                or self.wavelengths_nm[0] == self.wavelengths_nm[1]):
            raise ValueError(f"wavelengths_nm {list(self.wavelengths_nm)}: two different wavelengths above 0 nm")
        if self.width_weight > 0 and self.target_peak_nm is None:
            raise ValueError("width_weight needs target_peak_nm (it adds weight x FWHM to |peak - target|)")
        if self.window_nm is not None:
            lo, hi = self.window_nm
            if not lo < hi:
                raise ValueError(f"window_nm [{lo:g}, {hi:g}]: the start must be below the end")
            if self.target_peak_nm is not None and not lo <= self.target_peak_nm <= hi:
                raise ValueError(f"target_peak_nm {self.target_peak_nm:g} is outside window_nm [{lo:g}, {hi:g}]; "
                                 "widen the window or move the target")
        return self
