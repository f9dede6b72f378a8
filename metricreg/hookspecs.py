"""The hooks a metricreg plugin can implement.

Hooks are called when a Monitor starts (registration) and on rare events
(alerts); never on the per-step hot path.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from metricreg.health import Alert
    from metricreg.spec import Metric

PROJECT = "metricreg"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def metricreg_register_metrics(register: Callable[[Metric], None]) -> None:
    """Declare metrics: call ``register(Metric(...))`` once per metric."""


@hookspec
def metricreg_register_inputs(register: Callable[[str, Callable[..., Any]], None]) -> None:
    """Declare derived inputs: ``register(name, fn)``.

    ``fn`` takes other inputs by parameter name and is evaluated at most once per
    step, only when a due metric needs it (e.g. a global gradient norm shared by
    several metrics).
    """


@hookspec
def metricreg_on_alert(alert: Alert, monitor: Any) -> None:
    """A health rule fired (``alert.active``) or cleared. Called on the writer thread.

    Use it to notify, or call ``monitor.request_stop(reason)`` to ask the
    training loop (which checks ``monitor.should_stop``) to end the run.
    """
