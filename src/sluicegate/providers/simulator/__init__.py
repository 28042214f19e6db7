"""The built-in provider simulator: OpenAI's wire format with configurable latency, faults and usage."""

from sluicegate.providers.simulator.app import SimulatorApp, create_app
from sluicegate.providers.simulator.config import FaultRule, ModelBehaviour, SimulatorConfig, demo_simulator_config
from sluicegate.providers.simulator.loading import load_simulator_config, parse_simulator_config

__all__ = [
    "FaultRule",
    "ModelBehaviour",
    "SimulatorApp",
    "SimulatorConfig",
    "create_app",
    "demo_simulator_config",
    "load_simulator_config",
    "parse_simulator_config",
]
