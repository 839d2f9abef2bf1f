"""The dependency decisions of DESIGN.md hold in the project's own environment."""

from __future__ import annotations

from importlib import metadata

from packaging.version import Version


def test_opentrons_prefect_and_torch_work_in_one_process(prefect_server):
    """jsonschema is overridden to >= 4.18 for prefect; opentrons.simulate still runs beside torch."""
    import torch
    from prefect import flow

    from instruments.opentrons.protocol_script import simulate_protocol

    assert Version(metadata.version("jsonschema")) >= Version("4.18")
    assert metadata.version("opentrons") == "8.8.2"
    assert Version(metadata.version("fastapi")) < Version("0.155")

    protocol = '''
from opentrons import protocol_api
requirements = {"robotType": "OT-2", "apiLevel": "2.20"}
def run(protocol):
    tips = protocol.load_labware("opentrons_96_tiprack_300ul", 1)
    plate = protocol.load_labware("corning_96_wellplate_360ul_flat", 2)
    p300 = protocol.load_instrument("p300_single_gen2", "right", tip_racks=[tips])
    p300.transfer(100, plate["A1"], plate["B1"])
'''

    @flow
    def simulate_in_a_flow() -> str:
        return simulate_protocol(protocol)[0]

    log = simulate_in_a_flow()
    assert "Transferring 100" in log
    assert float(torch.ones(2, dtype=torch.float64).sum()) == 2.0
