"""Plate readers: what reads every well of a plate at a few wavelengths, and their simulated twin."""
