"""Plate readers driven through PyLabRobot's plate-reader front end (the optional ``pylabrobot`` extra).

``plate_reader`` is the driver (it imports PyLabRobot); ``handoff`` and ``twin`` do not, so a dry run
needs no PyLabRobot.
"""
