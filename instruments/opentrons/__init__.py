"""Opentrons OT-2 and Flex: the deck and labware, the generated protocol script, the HTTP driver and its simulated twin."""
