"""A cuvette (or flow-cell) station on the robot's deck, read by a fibre spectrometer.

``station``: the robot's steps of one batch and what they take (tips, rinse solvent), which the
batch's plate plan sets aside; ``protocol``: each step as an Opentrons protocol; ``sampler``: the
light-path hook that runs those protocols through the campaign's liquid handler, one before each read.
"""
