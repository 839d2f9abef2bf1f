"""Simulated twin of a UV-Vis absorbance spectrometer reading wells of the simulated plate."""

from __future__ import annotations

from typing import Sequence

from instruments.errors import InstrumentError
from instruments.protocols import Spectrum
from instruments.simulated_lab import SimulatedInstrument


class SimulatedSpectrometer(SimulatedInstrument):
    """``Spectrometer`` twin: absorbance from the simulator model, with detector noise."""

    def read_wells(self, wells: Sequence[str]) -> list[Spectrum]:
        spectra = []
        for label in wells:
            if label not in self.lab.wells:
                raise InstrumentError(f"{self.name}: well {label} is empty", hint="the robot did not fill it")
            values, saturated = self.lab.model.measure(self.lab.wells[label], self.lab.total_ul(label), self.lab.rng)
            spectra.append(Spectrum(
                well=label, kind="absorbance", wavelengths_nm=self.lab.model.wavelengths_nm.copy(), values=values,
                saturated=saturated, instrument=self.name,
            ))
        return spectra
