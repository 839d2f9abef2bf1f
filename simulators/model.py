"""What the rest of the project asks of a simulator model: the ``SimulatorModel`` protocol.

Its users: the simulated spectrometer (``instruments.spectrometers.twin``: wavelengths, noisy
readings, the detector ceiling, the kind of reading), the spec's check that the simulated
reagents are the campaign's (``orchestrator.spec.schema``: reagents), the target spectrum of a
mixture (``orchestrator.run.spectra_analysis.build_target``: the noise-free reading) and the
report's random-search baseline (``orchestrator.report.baseline``: the noise-free reading).

Volumes are in uL; a reading's units are the model's (absorbance [AU], emission [counts]).
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class SimulatorModel(Protocol):
    """A model that turns a well's contents into the spectrum a detector reads.

    ``volumes_ul`` maps reagent name to the volume [uL] dispensed into the well; names the model does not
    simulate (the diluent, water) add volume but no signal. ``total_ul`` is the well's volume [uL].
    """

    #: ``Spectrum.kind`` of the readings: ``"absorbance"`` or ``"fluorescence"``.
    kind: str
    #: Detector wavelengths [nm], increasing, shape ``(n_wavelengths,)``.
    wavelengths_nm: np.ndarray

    @property
    def reagents(self) -> tuple[str, ...]:
        """The reagent names the model simulates (what the robot must pipette for it to see an effect)."""
        ...

    @property
    def detector_ceiling(self) -> float:
        """The highest reading the detector reports [reading units]; a pixel there is saturated."""
        ...

    def clean_spectrum(self, volumes_ul: Mapping[str, float], total_ul: float) -> np.ndarray:
        """Noise-free reading of a well [reading units], shape ``(n_wavelengths,)``; zeros for an empty well."""
        ...

    def measure(self, volumes_ul: Mapping[str, float], total_ul: float, rng: np.random.Generator,
                elapsed_h: float = 0.0) -> tuple[np.ndarray, bool]:
        """A noisy reading ``elapsed_h`` hours into the campaign (baseline drift grows with it), clipped at
        ``detector_ceiling``: (values [reading units] of shape ``(n_wavelengths,)``, whether any pixel saturated).
        Draws from ``rng`` only, so a seeded campaign reproduces every reading."""
        ...


@runtime_checkable
class HasIntegrationTime(Protocol):
    """An emission model whose counts scale with the detector's integration time.

    The simulated spectrometer reports this time [ms] when the campaign configures none
    (absorbance models have no such setting: the twin then reports 100 ms).
    """

    #: Detector integration time [ms] the model's counts are computed for.
    integration_ms: float


#: ``factory(settings, noise) -> model``: builds a model from a campaign's ``simulation.settings`` and
#: ``simulation.noise`` mappings; raises ``ValueError`` naming a key that is wrong.
SimulatorFactory = Callable[[Mapping[str, Any], Mapping[str, Any]], SimulatorModel]
