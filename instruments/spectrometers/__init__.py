"""Spectrometers: the Ocean Optics driver (python-seabreeze) and the simulated UV-Vis twin."""
