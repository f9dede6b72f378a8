"""Invalid registrations fail at start-up, naming the plugin and the metric."""

import pytest

import metricreg as mr

from .test_monitor import Plugin


@pytest.fixture(autouse=True)
def hermetic(monkeypatch):
    monkeypatch.setenv("METRICREG_DISABLE_PLUGIN_AUTOLOAD", "1")


def start(tmp_path, *plugins, **kwargs):
    return mr.Monitor(tmp_path / "run", plugins=plugins, builtins=False, **kwargs)


@pytest.mark.parametrize("name", ["", "/lead", "trail/", "a//b", "sp ace", "ünï", 5])
def test_malformed_names(name):
    with pytest.raises(mr.SpecError, match="malformed"):
        mr.Metric(name, compute=lambda: 1.0)


@pytest.mark.parametrize("every", [0, -1, 2.5])
def test_non_positive_frequency(every):
    with pytest.raises(mr.SpecError, match="'m'.*schedule"):
        mr.Metric("m", compute=lambda: 1.0, every=every)


def test_spec_errors_inside_a_plugin_name_the_plugin(tmp_path):
    class Bad:
        @mr.hookimpl
        def metricreg_register_metrics(self, register):
            register(mr.Metric("ok", compute=lambda: 1.0, every=0))

    with pytest.raises(mr.RegistrationError, match="plugin '.*Bad'.*'ok'"):
        start(tmp_path, Bad())


def test_duplicate_names_across_plugins(tmp_path):
    one = Plugin(mr.Metric("dup", compute=lambda: 1.0))

    class Other:
        @mr.hookimpl
        def metricreg_register_metrics(self, register):
            register(mr.Metric("dup", compute=lambda: 2.0))

    with pytest.raises(
        mr.RegistrationError, match="'dup' is registered twice: by plugin '.*Plugin' and by plugin '.*Other'"
    ):
        start(tmp_path, one, Other())


def test_unknown_input_suggests_the_close_name(tmp_path):
    plugin = Plugin(mr.Metric("rank", compute=lambda embedings: 1.0), inputs=[("embeddings", None)])
    with pytest.raises(mr.RegistrationError, match="'rank'.*'embedings'.*Did you mean 'embeddings'"):
        start(tmp_path, plugin)
    # Declaring the input makes it valid.
    start(tmp_path, Plugin(mr.Metric("rank", compute=lambda embedings: 1.0)), inputs=["embedings"]).close()


def test_contradicting_thresholds():
    with pytest.raises(mr.SpecError, match="contradict"):
        mr.Health(warn_above=10, critical_above=5)
    with pytest.raises(mr.SpecError, match="contradict"):
        mr.Health(warn_below=1, critical_below=2)
    with pytest.raises(mr.SpecError, match="contradict"):
        mr.Health(warn_below=5, warn_above=1)
    with pytest.raises(mr.SpecError, match="finite"):
        mr.Health(warn_above=float("nan"))


def test_typo_in_hook_name_is_reported(tmp_path):
    class Typo:
        @mr.hookimpl
        def metricreg_register_metric(self, register):  # missing 's'
            pass

    with pytest.raises(mr.PluginError, match="Typo.*unknown hook.*metricreg_register_metrics"):
        start(tmp_path, Typo())


def test_derived_input_cycle(tmp_path):
    plugin = Plugin(inputs=[("a", lambda b: b), ("b", lambda a: a)])
    with pytest.raises(mr.RegistrationError, match="cycle"):
        start(tmp_path, plugin)


def test_compute_must_name_its_inputs():
    with pytest.raises(mr.SpecError, match="\\*args"):
        mr.Metric("m", compute=lambda *a: 1.0)


def test_registering_a_non_metric(tmp_path):
    class Wrong:
        @mr.hookimpl
        def metricreg_register_metrics(self, register):
            register("loss")

    with pytest.raises(mr.RegistrationError, match="Wrong.*expected a metricreg.Metric"):
        start(tmp_path, Wrong())


def test_config_retunes_one_family_member_and_names_unknown_members():
    from metricreg.config import ConfigError, load_config
    from metricreg.plugins import get_plugin_manager
    from metricreg.registry import collect

    pm = get_plugin_manager()
    registry = collect(pm, load_config({"stability/spikes": {"health": {"detected": {"warn_above": 0.5}}}}))
    spikes = next(r.metric for r in registry.metrics if r.metric.name == "stability/spikes")
    assert spikes.health["detected"].warn_above == 0.5
    assert spikes.health["rate"].warn_above == 0.25  # the other members keep their rules
    with pytest.raises(ConfigError, match=r"stability/spikes.*no family member named \['detcted'\]"):
        collect(pm, load_config({"stability/spikes": {"health": {"detcted": {"warn_above": 0.5}}}}))
