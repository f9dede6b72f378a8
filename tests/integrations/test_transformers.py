"""metricreg.integrations.transformers against the real ``Trainer``, with a config-built tiny BERT.

No download: the model is built from a config and the "text" is scikit-learn's digits, each
8x8 image a sequence of 64 pixel-intensity tokens (0..16). HF's own TensorBoardCallback
writes beside the Monitor; both are read back with TensorBoard's loader.
"""

from __future__ import annotations

import os

import pytest

pytest.importorskip("transformers")

import torch
from transformers import BertConfig, BertForSequenceClassification, Trainer, TrainingArguments

from metricreg.integrations.transformers import HealthCallback

from .conftest import active_alerts, scalars

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def data():
    from sklearn.datasets import load_digits

    d = load_digits()
    ids = torch.from_numpy(d.data.astype("int64") + 1)  # 1..17; 0 is padding
    y = torch.from_numpy(d.target.astype("int64"))
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(0))
    ids, y = ids[order], y[order]

    def dataset(sl):
        return [{"input_ids": ids[i], "labels": y[i]} for i in range(len(y))[sl]]

    return dataset(slice(0, 1400)), dataset(slice(1400, 1600)), ids[:16]


def _model():
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=18,
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
        num_labels=10,
    )
    return BertForSequenceClassification(config)


def _args(out, **kwargs):
    defaults = dict(
        output_dir=str(out),
        per_device_train_batch_size=32,
        learning_rate=1e-3,
        logging_steps=1,
        report_to=["tensorboard"],
        use_cpu=True,
        save_strategy="no",
        eval_strategy="steps",
        eval_steps=20,
        seed=0,
        dataloader_num_workers=0,
        disable_tqdm=True,
    )
    defaults.update(kwargs)
    return TrainingArguments(**defaults)


def test_steps_values_and_eval_match_hfs_own_tensorboard(tmp_path, data, monkeypatch):
    train, val, probe_ids = data
    monkeypatch.setenv("TENSORBOARD_LOGGING_DIR", str(tmp_path / "hf"))
    callback = HealthCallback(probe={"input_ids": probe_ids})
    trainer = Trainer(
        model=_model(),
        args=_args(tmp_path / "out", max_steps=101, max_grad_norm=0.2, lr_scheduler_type="linear"),
        train_dataset=train,
        eval_dataset=val,
        callbacks=[callback],
    )
    trainer.train()

    ours, theirs = scalars(tmp_path / "out" / "metricreg"), scalars(tmp_path / "hf")
    hf_loss = dict(theirs["train/loss"])
    assert [s for s, _ in ours["train/loss"]][:3] == [1, 10, 20]  # HF counts updates from 1
    for step, value in ours["train/loss"]:
        assert value == pytest.approx(hf_loss[step], rel=1e-4), step
    hf_norm = dict(theirs["train/grad_norm"])  # HF logs the norm clip_grad_norm_ returned (pre-clip)
    for step, value in ours["train/optimization/grad_norm"]:
        assert value == pytest.approx(hf_norm[step], rel=1e-4), step
    assert max(v for _, v in ours["train/optimization/grad_norm"]) > 0.2  # above max_norm: read pre-clip
    hf_lr = dict(theirs["train/learning_rate"])  # HF reads it before the scheduler steps
    for step, value in ours["train/optimization/lr/group0"]:  # HF: decay and no-decay groups
        assert value == pytest.approx(hf_lr[step], rel=1e-5), step
    hf_eval = theirs["eval/loss"]
    assert [s for s, _ in ours["val/loss"]] == [s for s, _ in hf_eval] == [20, 40, 60, 80, 100, 101]
    for (_, a), (_, b) in zip(ours["val/loss"], hf_eval, strict=True):
        assert a == pytest.approx(b, rel=1e-6)
    for tag in ("update_ratio", "clip_fraction", "grad_flow"):
        assert any(t.startswith(f"train/optimization/{tag}") for t in ours), tag
    assert any(t.startswith("train/collapse/") for t in ours)  # embeddings from the probe batch
    # Clipping at 0.2 acts on every step: the clip-fraction warning is a true positive.
    alerts = active_alerts(tmp_path / "out" / "metricreg")
    assert any(a.startswith("train/optimization/clip_fraction=") for a in alerts), alerts


def test_same_directory_as_hfs_tensorboard_writes_each_tag_once_and_a_healthy_run_is_green(tmp_path, data, monkeypatch):
    train, val, _ = data
    shared = tmp_path / "tb"
    monkeypatch.setenv("TENSORBOARD_LOGGING_DIR", str(shared))
    trainer = Trainer(
        model=_model(),
        args=_args(tmp_path / "out", max_steps=41),  # HF's defaults: max_grad_norm=1.0
        train_dataset=train,
        eval_dataset=val,
        callbacks=[callback := HealthCallback(shared)],
    )
    trainer.train()
    trainer.evaluate()  # after train(): still reaches the Monitor
    callback.mon.close()
    tags = scalars(shared)
    steps = [s for s, _ in tags["train/loss"]]
    assert steps == sorted(set(steps)) == list(range(1, 42))  # HF's points only, none duplicated
    assert "train/optimization/lr/group0" in tags
    assert [st for st, _ in tags["val/loss"]] == [st for st, _ in tags["eval/loss"]] == [20, 40, 41, 41]
    assert active_alerts(shared) == []


def test_should_stop_sets_should_training_stop(tmp_path, data):
    train, _, _ = data

    class StopAt5(HealthCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == 5:
                self.mon.request_stop("test")
            return super().on_step_end(args, state, control, **kwargs)

    trainer = Trainer(
        model=_model(),
        args=_args(tmp_path / "out", max_steps=100, eval_strategy="no", report_to=[]),
        train_dataset=train,
        callbacks=[StopAt5(os.fspath(tmp_path / "mr"))],
    )
    trainer.train()
    assert trainer.state.global_step == 10  # requested at 5, seen at the next check


def test_bad_arguments_name_themselves():
    with pytest.raises(TypeError, match="probe"):
        HealthCallback(probe=[1, 2])
    with pytest.raises(ValueError, match="stop_check_every"):
        HealthCallback(stop_check_every=0)


@pytest.mark.parametrize("arch", ["bert", "gpt2"])
def test_gradient_accumulation_loss_equals_hfs_per_step_loss(tmp_path, data, monkeypatch, arch):
    """BERT gets a mean loss per micro-batch; GPT-2 takes num_items_in_batch and divides by the window's tokens."""
    from transformers import GPT2Config, GPT2LMHeadModel

    train, _, _ = data
    if arch == "gpt2":
        torch.manual_seed(0)
        model = GPT2LMHeadModel(GPT2Config(vocab_size=18, n_positions=64, n_embd=32, n_layer=1, n_head=2))
        # Labels masked unevenly, so micro-batches hold different numbers of tokens.
        train = [
            {"input_ids": r["input_ids"], "labels": r["input_ids"].masked_fill(r["input_ids"] < 3, -100)} for r in train
        ]
    else:
        model = _model()
    monkeypatch.setenv("TENSORBOARD_LOGGING_DIR", str(tmp_path / "hf"))
    args = _args(
        tmp_path / "out", max_steps=12, per_device_train_batch_size=8, gradient_accumulation_steps=2, eval_strategy="no"
    )
    callback = HealthCallback(config={"loss": {"every": 1}})
    Trainer(model=model, args=args, train_dataset=train, callbacks=[callback]).train()
    ours, theirs = (
        dict(scalars(tmp_path / "out" / "metricreg")["train/loss"]),
        dict(scalars(tmp_path / "hf")["train/loss"]),
    )
    assert sorted(ours) == sorted(theirs) == list(range(1, 13))
    for step, value in ours.items():
        assert value == pytest.approx(theirs[step], rel=1e-5), step
