"""The TCP experiments (send buffer, flow control, partial send) run and their claims hold
with the default parameters."""

import importlib
import json

import pytest


@pytest.mark.parametrize("name", ["send_buffer_blocks", "flow_control", "partial_send"])
def test_experiment_claims_hold(name):
    m = importlib.import_module(f"experiments.{name}")
    result = json.loads(json.dumps(m.run(dict(m.PARAMS), 1), allow_nan=False))
    assert [str(c) for c in m.check(result) if c.status != "PASS"] == []


def test_send_buffer_blocks_deterministic():
    m = importlib.import_module("experiments.send_buffer_blocks")
    assert m.run(dict(m.PARAMS), 3) == m.run(dict(m.PARAMS), 3)
