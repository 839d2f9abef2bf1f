"""The moves of a plate between the robot's deck and a reader that a person loads (``roles.SupportsPlateHandoff``):
``load`` the plate into the reader, ``return`` it to the deck, ``replace`` it (full) by an empty one there.

A module of its own, without imports, so that ``sdl``'s argument parser offers them without loading the drivers.
"""

HANDOFF_STEPS = ("load", "return", "replace")
