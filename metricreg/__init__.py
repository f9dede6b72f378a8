"""metricreg: a metric plugin registry for training loops, with a TensorBoard Health tab.

import metricreg as mr
mon = mr.Monitor("runs/exp1")
for step, batch in enumerate(loader):
    loss, z = train_step(batch)
    mon.step(loss=loss, embeddings=lambda: z.detach())
mon.close()
"""

from metricreg.config import ConfigError
from metricreg.health import Alert
from metricreg.hookspecs import hookimpl, hookspec
from metricreg.monitor import Monitor
from metricreg.plugins import PluginError
from metricreg.registry import RegistrationError
from metricreg.schedules import Schedule, every, log_spaced, on
from metricreg.spec import Health, Metric, SpecError
from metricreg.writer import LogdirError

__version__ = "0.1.0"

__all__ = [
    "Alert",
    "ConfigError",
    "Health",
    "LogdirError",
    "Metric",
    "Monitor",
    "PluginError",
    "RegistrationError",
    "Schedule",
    "SpecError",
    "__version__",
    "every",
    "hookimpl",
    "hookspec",
    "log_spaced",
    "on",
]
