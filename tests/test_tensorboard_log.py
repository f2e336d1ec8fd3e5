"""TensorBoard logging (pyro_air/train/tensorboard_log.py): without the package a clear error before
anything is written; with it every epoch's metrics as scalars under RUN_DIR/tensorboard, the same
numbers as metrics.jsonl, and training unchanged. The writer is a fake unless tensorboard is installed."""
import json

import pytest
import torch

from pyro_air import guides, infer, models
from pyro_air.cli import main
from pyro_air.support import extras
from pyro_air.support.extras import MissingExtraError
from pyro_air.train import TrainConfig, fit, tensorboard_log
from pyro_air.train.schedule import StepSchedule
from tests.helpers import assert_same_tensors


class FakeWriter:
    """Records what the loop asks of a SummaryWriter."""
    made = []

    def __init__(self, log_dir, purge_step=None):
        self.log_dir, self.purge_step = log_dir, purge_step
        self.scalars, self.flushes, self.closed = [], 0, False
        FakeWriter.made.append(self)

    def add_scalar(self, tag, value, global_step=None):
        assert not self.closed
        self.scalars.append((tag, value, global_step))

    def flush(self):
        self.flushes += 1

    def close(self):
        self.closed = True


@pytest.fixture
def fake_tensorboard(monkeypatch):
    FakeWriter.made = []
    monkeypatch.setattr(extras, "installed", lambda module: True)
    monkeypatch.setattr(tensorboard_log, "summary_writer_class", lambda: FakeWriter)
    return FakeWriter


@pytest.fixture
def no_tensorboard(monkeypatch):
    real = extras.installed
    monkeypatch.setattr(extras, "installed", lambda module: module != "tensorboard" and real(module))


def _run(run_dir, schedule=None, **config):
    torch.manual_seed(0)
    model = models.build("bernoulli-vae", x_dim=20, z_dim=2, hidden=(8,))
    guide = guides.build("gaussian", x_dim=20, z_dim=2, hidden=(8,))
    x = torch.bernoulli(torch.full((60, 20), 0.3), generator=torch.Generator().manual_seed(1))
    cfg = TrainConfig(**{"epochs": 3, "batch_size": 10, "lr": 1e-2, "valid_num_samples": 4, "progress": False,
                         **config})
    fit(model, guide, infer.build("iwae", num_particles=2), x, x[:20], cfg, run_dir=run_dir, spec={"t": 1},
        schedule=schedule)
    return model, guide


def _metrics(run_dir):
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_without_the_package_config_and_cli_say_what_to_install(tmp_path, no_tensorboard, capsys):
    with pytest.raises(MissingExtraError, match=r"needs the optional package tensorboard, which is not installed; "
                                                r"pip install tensorboard"):
        TrainConfig(tensorboard=True).validate()
    assert isinstance(MissingExtraError("x"), ImportError)
    TrainConfig(tensorboard=False).validate()  # only asked for when used
    run = tmp_path / "run"
    assert main(["train", "--tensorboard", "--train-size", "100", "--epochs", "1", "--run-dir", str(run)]) == 2
    assert "pip install tensorboard" in capsys.readouterr().err
    assert not run.exists() or not any(run.iterdir())  # refused before anything was written


def test_every_epoch_is_logged_as_in_metrics_jsonl_and_training_is_unchanged(tmp_path, fake_tensorboard):
    logged = _run(tmp_path / "tb", tensorboard=True)
    plain = _run(tmp_path / "plain")
    assert_same_tensors(logged[0].state_dict(), plain[0].state_dict())
    assert_same_tensors(logged[1].state_dict(), plain[1].state_dict())
    strip = [{k: v for k, v in r.items() if k != "epoch_seconds"} for r in _metrics(tmp_path / "tb")]
    assert strip == [{k: v for k, v in r.items() if k != "epoch_seconds"} for r in _metrics(tmp_path / "plain")]
    assert not (tmp_path / "plain" / "tensorboard").exists()

    (writer,) = FakeWriter.made
    assert writer.log_dir == str(tmp_path / "tb" / "tensorboard") and writer.purge_step is None
    assert writer.closed and writer.flushes == 3
    expected = [(k, float(v), r["epoch"]) for r in _metrics(tmp_path / "tb") for k, v in r.items()
                if k not in ("epoch", "step")]
    assert writer.scalars == expected
    assert {tag for tag, _, _ in writer.scalars} == {"train_loss", "valid_iwae4", "lr", "epoch_seconds"}
    assert [step for tag, _, step in writer.scalars if tag == "train_loss"] == [1, 2, 3]


class StopInEpoch(StepSchedule):
    """Raises at the given step (a crash), after the checkpoint of the epoch before it."""

    def __init__(self, step):
        self.step = step

    def before_step(self, trainer):
        if trainer.loop.step == self.step:
            raise RuntimeError("crash")


def test_a_resumed_run_purges_what_it_logged_after_its_checkpoint(tmp_path, fake_tensorboard):
    run = tmp_path / "run"
    with pytest.raises(RuntimeError, match="crash"):
        _run(run, schedule=StopInEpoch(8), tensorboard=True)  # 6 steps per epoch: dies in epoch 2
    first = FakeWriter.made[0]
    assert first.closed and [s for t, _, s in first.scalars if t == "train_loss"] == [1]
    torch.manual_seed(0)
    model = models.build("bernoulli-vae", x_dim=20, z_dim=2, hidden=(8,))
    guide = guides.build("gaussian", x_dim=20, z_dim=2, hidden=(8,))
    x = torch.bernoulli(torch.full((60, 20), 0.3), generator=torch.Generator().manual_seed(1))
    cfg = TrainConfig(epochs=3, batch_size=10, lr=1e-2, valid_num_samples=4, progress=False, tensorboard=True)
    fit(model, guide, infer.build("iwae", num_particles=2), x, x[:20], cfg, run_dir=run, spec={"t": 1}, resume=True)
    second = FakeWriter.made[1]
    assert second.purge_step == 2 and [s for t, _, s in second.scalars if t == "train_loss"] == [2, 3]


def test_tensorboard_needs_a_run_directory(fake_tensorboard):
    with pytest.raises(ValueError, match="pass fit\\(..., run_dir=...\\)"):
        _run(None, tensorboard=True)


def test_a_resume_may_switch_tensorboard_on_or_off():
    from pyro_air.train import RESUME_MAY_CHANGE

    assert "train_config.tensorboard" in RESUME_MAY_CHANGE


def test_scalars_skip_counters_flags_and_non_finite_values():
    record = {"epoch": 2, "step": 10, "train_loss": 1.5, "lr": 1e-3, "beta": True, "note": "x",
              "valid_iwae5": float("nan")}
    assert tensorboard_log.scalars_of(record) == {"train_loss": 1.5, "lr": 1e-3}


@pytest.mark.skipif(not extras.installed("tensorboard"), reason="tensorboard is not installed")
def test_the_real_writer_leaves_event_files(tmp_path):
    _run(tmp_path / "run", tensorboard=True, epochs=1)
    assert list((tmp_path / "run" / "tensorboard").glob("events.out.tfevents.*"))


def test_a_linked_or_file_log_directory_is_refused_in_one_line(tmp_path, fake_tensorboard):
    from pyro_air.train.run_dir import RunDirError

    run = tmp_path / "run"
    run.mkdir()
    (tmp_path / "elsewhere").mkdir()
    (run / "tensorboard").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(RunDirError, match=r"tensorboard is a symbolic link \(to .*elsewhere\); pyro-air writes "
                                          r"TensorBoard's event files only inside the run directory") as info:
        tensorboard_log.open_writer(run)
    assert "\n" not in str(info.value) and FakeWriter.made == [] and list((tmp_path / "elsewhere").iterdir()) == []
    (run / "tensorboard").unlink()
    (run / "tensorboard").write_text("not a directory")
    with pytest.raises(RunDirError, match="tensorboard is a file, not a directory"):
        tensorboard_log.open_writer(run)
    (run / "tensorboard").unlink()
    assert tensorboard_log.open_writer(run).log_dir == str(run / "tensorboard")
