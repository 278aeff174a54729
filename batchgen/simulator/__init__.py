"""A local Kling image2video server: the same paths, envelopes, task states and error codes as
the API batchgen targets, with latency, slots and faults as switches, serving real MP4s."""

from batchgen.simulator.app import KlingSimulator
from batchgen.simulator.config import SimulatorConfig
from batchgen.simulator.server import SimulatorHandle, running_simulator, serve

__all__ = ["KlingSimulator", "SimulatorConfig", "SimulatorHandle", "running_simulator", "serve"]
