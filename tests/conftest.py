"""Shared fixtures: real metricreg runs on disk, and real TensorBoard servers over them.

The session logdir holds:

* ``healthy`` and ``collapse``: tiny torch trainings after the diagnostics reference
  (section 5.1: InfoNCE vs. negative-cosine-only "complete collapse"), monitored by a
  Monitor with the built-in collapse metrics (``metricreg.builtins.collapse``: RankMe,
  effective rank, std, mean cosine, ...) every 20 steps;
* ``diverged``: a loss that turns Inf, then NaN;
* ``flaky``: a metric that raises (metric errors, disabled after 3 failures);
* ``plain``: a ``torch.utils.tensorboard.SummaryWriter`` run with ``train/loss`` and
  ``val/loss`` only (no manifest): the tab derives a generalization gap;
* ``<img src=x onerror=alert(1)>``: a run whose name is an XSS payload.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import socket
import threading
import time
import types
import urllib.error
import urllib.request
from pathlib import Path

# Hermetic: no third-party metricreg plugins from the environment.
os.environ["METRICREG_DISABLE_PLUGIN_AUTOLOAD"] = "1"

import numpy as np
import pytest

import metricreg as mr

XSS_RUN = "<img src=x onerror=alert(1)>"
RANK_TAG = "train/collapse/rankme"


class LossPlugin:
    def __init__(self, every: int = 1) -> None:
        self.every = every

    @mr.hookimpl
    def metricreg_register_metrics(self, register):
        register(
            mr.Metric(
                "loss",
                compute=lambda loss: loss,
                every=self.every,
                health=mr.Health(
                    category="stability", critical_above=1e3, description="Training loss.", remedy="Lower the lr."
                ),
            )
        )


class FlakyPlugin:
    @mr.hookimpl
    def metricreg_register_metrics(self, register):
        def flaky(loss, step):
            if step >= 5:
                raise ValueError("flaky metric exploded")
            return loss

        register(mr.Metric("flaky/score", compute=flaky, every=1, health=mr.Health(category="optimization")))


class QualityPlugin:
    @mr.hookimpl
    def metricreg_register_metrics(self, register):
        register(
            mr.Metric(
                "quality/score",
                compute=lambda loss: loss,
                every=1,
                health=mr.Health(category="prediction", warn_below=0.5, critical_below=0.2),
            )
        )


# --- run writers -------------------------------------------------------------------------------


def _ssl_regime(logdir: str, regime: str, steps: int, seed: int = 0) -> None:
    """Diagnostics reference 5.1, shortened: Linear(16,16) encoder, orthogonal init, plain SGD."""
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(1)
    gen = torch.Generator().manual_seed(seed)
    data = torch.randn(10_000, 16, generator=gen)
    probe = torch.randn(1024, 16, generator=gen)
    enc = torch.nn.Linear(16, 16)
    with torch.no_grad():
        q, _ = torch.linalg.qr(torch.randn(16, 16, generator=gen))
        enc.weight.copy_(q)
        enc.bias.zero_()
    if regime == "healthy":
        lr, noise = 0.2, torch.cat([torch.zeros(8), torch.full((8,), 0.01)])
    else:
        lr, noise = 2.0, torch.full((16,), 0.5)
    opt = torch.optim.SGD(enc.parameters(), lr=lr)
    # The built-in collapse family (RankMe, effective rank, std, mean cosine, ...) every 20 steps.
    config = {"collapse": {"every": 20}, "collapse/spectrum": False}
    mon = mr.Monitor(
        logdir, plugins=["metricreg.builtins.collapse", LossPlugin(every=5)], config=config, builtins=False
    )
    for step in range(steps):
        idx = torch.randint(0, data.shape[0], (128,), generator=gen)
        x = data[idx]
        v1 = x + noise * torch.randn(x.shape, generator=gen)
        v2 = x + noise * torch.randn(x.shape, generator=gen)
        z1, z2 = enc(v1), enc(v2)
        if regime == "healthy":
            logits = F.normalize(z1, dim=1) @ F.normalize(z2, dim=1).T / 0.1
            loss = F.cross_entropy(logits, torch.arange(128))
        else:
            loss = -F.cosine_similarity(z1, z2, dim=1).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        mon.step(step, loss=loss.detach(), embeddings=lambda: enc(probe).detach().numpy())
        if step % 50 == 49:
            mon.eval(step, loss=float(loss.detach()))
    mon.close()


def write_diverged_run(logdir: str) -> None:
    mon = mr.Monitor(logdir, plugins=[LossPlugin()], builtins=False)
    for step in range(60):
        if step < 40:
            loss = 2.0 / (1 + step)
        elif step == 40:
            loss = math.inf
        else:
            loss = math.nan
        mon.step(step, loss=loss)
    mon.close()


def write_flaky_run(logdir: str) -> None:
    mon = mr.Monitor(logdir, plugins=[FlakyPlugin(), LossPlugin()], builtins=False)
    for step in range(30):
        mon.step(step, loss=1.0 / (1 + step))
    mon.close()


def write_quality_run(logdir: str, values) -> None:
    """A numpy-only Monitor run: ``train/quality/score`` (prediction) and ``train/loss``."""
    mon = mr.Monitor(logdir, plugins=[QualityPlugin()], builtins=False)
    for step, value in enumerate(values):
        mon.step(step, loss=float(value))
    mon.close()


def write_plain_run(logdir: str) -> None:
    """Overfitting, written by PyTorch's own SummaryWriter: no manifest at all."""
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(logdir)
    for step in range(200):
        writer.add_scalar("train/loss", math.exp(-step / 40) + 0.05, step)
        if step % 20 == 19:
            writer.add_scalar("val/loss", 0.3 + 0.003 * max(0, step - 60), step)
            writer.add_scalar("train/accuracy", min(1.0, 0.5 + step / 300), step)
            writer.add_scalar("val/accuracy", 0.7, step)
    writer.add_scalar("lr", 0.1, 0)
    writer.close()


@pytest.fixture(scope="session")
def health_logdir(tmp_path_factory) -> types.SimpleNamespace:
    """A logdir with every kind of run the Health tab must handle (built once, a few seconds)."""
    pytest.importorskip("torch", reason="the fixture runs are tiny torch trainings (pip install metricreg[torch])")
    root = tmp_path_factory.mktemp("logdir")
    _ssl_regime(str(root / "healthy"), "healthy", steps=200)
    _ssl_regime(str(root / "collapse"), "collapse", steps=300)
    write_diverged_run(str(root / "diverged"))
    write_flaky_run(str(root / "flaky"))
    write_plain_run(str(root / "plain"))
    write_quality_run(str(root / XSS_RUN), np.linspace(1.0, 0.1, 40))
    # Not a health run: plain scalars with no conventional tags (must not be listed).
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(str(root / "unrelated"))
    for step in range(5):
        writer.add_scalar("misc/throughput", 100.0 + step, step)
    writer.close()
    return types.SimpleNamespace(
        path=str(root),
        healthy="healthy",
        collapse="collapse",
        diverged="diverged",
        flaky="flaky",
        plain="plain",
        xss=XSS_RUN,
        unrelated="unrelated",
        listed=sorted(["healthy", "collapse", "diverged", "flaky", "plain", XSS_RUN]),
    )


@pytest.fixture(scope="session")
def writers() -> types.SimpleNamespace:
    """The run writers, for tests that build their own logdirs."""
    return types.SimpleNamespace(
        quality=write_quality_run, diverged=write_diverged_run, flaky=write_flaky_run, plain=write_plain_run
    )


@pytest.fixture
def copy_logdir(health_logdir, tmp_path):
    """A private copy of the session logdir, for tests that add or damage runs."""

    def make(*runs: str) -> str:
        dest = tmp_path / "copy"
        dest.mkdir(exist_ok=True)
        for run in runs or health_logdir.listed:
            shutil.copytree(os.path.join(health_logdir.path, run), dest / run)
        return str(dest)

    return make


# --- real TensorBoard servers ------------------------------------------------------------------


class TensorBoardServer:
    """``program.TensorBoard`` with the installed plugins (entry points included), in a thread."""

    def __init__(self, logdir: str, load_fast: str = "false", *extra: str) -> None:
        from tensorboard import default, program

        self.tb = program.TensorBoard(plugins=default.get_plugins())
        argv = [None, "--logdir", logdir, "--port", "0", "--load_fast", load_fast, "--reload_interval", "1"]
        self.tb.configure(argv=[*argv, *extra])
        self.server = self.tb._make_server()
        self.thread = threading.Thread(target=self.server.serve_forever, name="TensorBoard-test", daemon=True)
        self.thread.start()
        self.url = self.server.get_url()  # ends with "/", includes --path_prefix

    def get(self, path: str, timeout: float = 30.0) -> tuple[int, dict, bytes]:
        try:
            with urllib.request.urlopen(self.url + path, timeout=timeout) as resp:
                return resp.status, dict(resp.headers), resp.read()
        except urllib.error.HTTPError as exc:
            return exc.code, dict(exc.headers), exc.read()

    def json(self, path: str):
        code, _, body = self.get(path)
        assert code == 200, (path, code, body[:300])
        return json.loads(body)

    def wait_for(self, predicate, timeout: float = 60.0, what: str = "condition"):
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            try:
                last = predicate()
                if last:
                    return last
            except (OSError, AssertionError, ValueError, KeyError) as exc:
                last = exc
            time.sleep(0.2)
        raise AssertionError(f"timed out waiting for {what}; last: {last!r}")

    def wait_for_tab(self, timeout: float = 60.0) -> dict:
        def enabled():
            listing = self.json("data/plugins_listing")
            entry = listing.get("metricreg_health")
            return entry if entry and entry.get("enabled") else None

        return self.wait_for(enabled, timeout, "the Health tab to be enabled")

    def wait_for_runs(self, runs, timeout: float = 60.0, query: str = "") -> dict:
        wanted = set(runs)

        def listed():
            body = self.json("data/plugin/metricreg_health/runs" + query)
            return body if wanted <= {r["run"] for r in body["runs"]} else None

        return self.wait_for(listed, timeout, f"runs {sorted(wanted)}")

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        ingester = getattr(self.tb, "_ingester", None)
        stdin = getattr(ingester, "_stdin_handle", None)
        if stdin is not None:
            stdin.close()  # the RustBoard data server runs with --die-after-stdin


@pytest.fixture
def tensorboard_server():
    """Factory: start real TensorBoard servers; all are shut down after the test."""
    servers: list[TensorBoardServer] = []

    def start(logdir: str, load_fast: str = "false", *extra: str) -> TensorBoardServer:
        server = TensorBoardServer(logdir, load_fast, *extra)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("localhost", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return Path(__file__).resolve().parent.parent
