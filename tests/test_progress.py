"""Progress bars: text bars without the "IProgress not found" TqdmWarning where ipywidgets is missing."""
import importlib
import sys
import warnings

import tqdm.std

from pyro_air.support import progress


def test_without_ipywidgets_the_bars_are_plain_text_and_warn_nothing(monkeypatch):
    monkeypatch.setitem(sys.modules, "ipywidgets", None)  # as in a fresh kernel without ipywidgets
    try:
        reloaded = importlib.reload(progress)
        assert reloaded.tqdm is tqdm.std.tqdm
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # a TqdmWarning would raise here
            with reloaded.tqdm(total=3, disable=False, file=sys.stderr) as bar:
                bar.update(3)
            assert bar.n == 3
    finally:
        monkeypatch.undo()
        importlib.reload(progress)


def test_one_job_bar_counts_every_training_step_and_shows_the_last_loss(capsys):
    """issue 36: one bar over a command's whole work (ETA over all of it, the loss in it), not one per epoch."""
    import torch

    from pyro_air import guides, infer, models
    from pyro_air.train import TrainConfig, fit

    x = torch.bernoulli(torch.full((40, 6), 0.4), generator=torch.Generator().manual_seed(0))
    config = TrainConfig(epochs=3, batch_size=10, progress=True, threads=1)
    with progress.JobProgress(total=2 * 3 * 4, desc="job") as job:
        for _ in range(2):
            torch.manual_seed(0)
            model = models.build("bernoulli-vae", x_dim=6, z_dim=2, hidden=(4,))
            guide = guides.build("gaussian", x_dim=6, z_dim=2, hidden=(4,))
            result = fit(model, guide, infer.MonteCarloELBO(), x, x[:10], config)
        assert job.done == job.bar.n == 24  # 2 models x 3 epochs x 4 steps
        assert job.values["loss"] == result.history[-1]["train_loss"]
        assert job.values["valid"] == result.history[-1]["valid_iwae100"]
    assert progress.current_job() is None
    err = capsys.readouterr().err
    assert "job: epoch 3/3" in err and "24/24" in err
    assert "epoch 1/3:" not in err.replace("job: epoch 1/3", "")  # no per-epoch bars inside a job


def test_reach_gives_up_the_steps_of_an_early_stop_and_write_prints_above_the_bar(capsys):
    with progress.JobProgress(total=10, desc="job", disable=True) as job:
        job.advance(3)
        job.reach(6)
        job.reach(2)  # never backwards
        assert job.done == 6
        job.write("a line")
    assert capsys.readouterr().out == "a line\n"


def test_say_writes_above_the_current_jobs_bar_or_prints_without_one(capsys):
    progress.say("no job")
    with progress.JobProgress(total=2, desc="job", disable=False) as job:
        progress.say("inside")
        job.advance(2)
    captured = capsys.readouterr()
    assert captured.out == "no job\ninside\n"  # tqdm.write: stdout, the bar redrawn below on stderr
    assert "inside" not in captured.err and "2/2" in captured.err
