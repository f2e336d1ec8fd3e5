"""Resumable evaluation (pyro_air.evaluate.resume): a call cut short and made again returns the
uninterrupted values exactly, keeps nothing once done, and refuses a file of another evaluation."""
import importlib

import pytest
import torch

from pyro_air.compare import evaluate_row
from pyro_air.evaluate import elbo, log_likelihood
from pyro_air.guides import ExactPosteriorGuide
from tests import outside_models


# the module, not the function of the same name that pyro_air.evaluate exports
ll_module = importlib.import_module("pyro_air.evaluate.log_likelihood")


class Interrupt(Exception):
    pass


def interrupt_after(monkeypatch, name: str, calls: int):
    """Make ``ll_module.<name>`` (the per-batch reduction) raise on its ``calls + 1``-th call."""
    original, count = getattr(ll_module, name), {"n": 0}

    def reduce(chunks):
        if count["n"] == calls:
            raise Interrupt
        count["n"] += 1
        return original(chunks)

    monkeypatch.setattr(ll_module, name, reduce)
    return count


@pytest.mark.parametrize("estimator, reduction", [(log_likelihood, "streaming_logmeanexp"),
                                                  (elbo, "_mean_of_chunks")])
def test_interrupted_evaluation_resumes_to_the_uninterrupted_values(linear_gaussian, tmp_path, monkeypatch,
                                                                     estimator, reduction):
    model, x = linear_gaussian
    guide = ExactPosteriorGuide(model, scale_factor=0.6, loc_shift=0.4)
    whole = estimator(model, guide, x, num_samples=30, batch_size=5, seed=11)
    path = tmp_path / "partial.pt"
    with monkeypatch.context() as m:
        interrupt_after(m, reduction, 2)
        with pytest.raises(Interrupt):
            estimator(model, guide, x, num_samples=30, batch_size=5, seed=11, resume_file=path)
    assert path.exists()
    assert sorted(torch.load(path, weights_only=True)["batches"]) == [0, 1]
    counted = interrupt_after(monkeypatch, reduction, 10 ** 6)
    resumed = estimator(model, guide, x, num_samples=30, batch_size=5, seed=11, resume_file=path)
    assert torch.equal(resumed, whole)
    assert counted["n"] == 2  # 16 points in batches of 5: batches 2 and 3 drawn, 0 and 1 read back
    assert not path.exists()


def test_a_file_of_another_evaluation_is_refused_and_kept(linear_gaussian, tmp_path, monkeypatch):
    model, x = linear_gaussian
    guide = ExactPosteriorGuide(model, scale_factor=0.6)
    path = tmp_path / "partial.pt"
    with monkeypatch.context() as m:
        interrupt_after(m, "streaming_logmeanexp", 1)
        with pytest.raises(Interrupt):
            log_likelihood(model, guide, x, num_samples=20, batch_size=4, seed=3, resume_file=path)
    before = path.read_bytes()
    with pytest.raises(ValueError, match=r"belongs to another evaluation \(chunk, estimator differ\); delete it"):
        log_likelihood(model, guide, x, num_samples=21, batch_size=4, seed=3, resume_file=path)
    with pytest.raises(ValueError, match=r"\(seed differ\)"):
        log_likelihood(model, guide, x, num_samples=20, batch_size=4, seed=4, resume_file=path)
    with pytest.raises(ValueError, match=r"\(data differ\)"):
        log_likelihood(model, guide, x + 1, num_samples=20, batch_size=4, seed=3, resume_file=path)
    with torch.no_grad():
        next(model.parameters()).add_(0.01)  # the model trained further
    with pytest.raises(ValueError, match=r"\(model differ\)"):
        log_likelihood(model, guide, x, num_samples=20, batch_size=4, seed=3, resume_file=path)
    assert path.read_bytes() == before


def test_resuming_needs_a_seed_and_a_readable_file(linear_gaussian, tmp_path):
    model, x = linear_gaussian
    guide = ExactPosteriorGuide(model)
    with pytest.raises(ValueError, match="resume_file needs a seeded, single-process evaluation: pass seed="):
        log_likelihood(model, guide, x, num_samples=5, resume_file=tmp_path / "p.pt")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a torch file")
    with pytest.raises(ValueError, match="is not a partial evaluation .*; delete it or pass another resume_file"):
        log_likelihood(model, guide, x, num_samples=5, seed=0, resume_file=bad)


def test_a_plain_pyro_model_resumes_on_the_traced_path(tmp_path, monkeypatch):
    case = outside_models.build("nested")
    data = case.data(12)
    whole = log_likelihood(case.model, case.guide, data, num_samples=16, batch_size=4, seed=2)
    path = tmp_path / "partial.pt"
    with monkeypatch.context() as m:
        interrupt_after(m, "streaming_logmeanexp", 1)
        with pytest.raises(Interrupt):
            log_likelihood(case.model, case.guide, data, num_samples=16, batch_size=4, seed=2, resume_file=path)
    resumed = log_likelihood(case.model, case.guide, data, num_samples=16, batch_size=4, seed=2, resume_file=path)
    assert torch.equal(resumed, whole)


@pytest.mark.parametrize("k", [1, 3])
def test_a_row_cut_in_its_bound_keeps_its_log_likelihood(linear_gaussian, tmp_path, monkeypatch, k):
    """evaluate_row: cut while the bound is drawn, asked again: the IWAE-S part is read back, not redrawn,
    and the row equals the uninterrupted one."""
    model, x = linear_gaussian
    guide = ExactPosteriorGuide(model, scale_factor=0.7)
    whole = evaluate_row(model, guide, x, k=k, num_samples=40, num_estimates=3, seed=8)
    resume_dir = tmp_path / "row"
    # 16 points: one batch per call; the IWAE-S call, then the bound's (1 call for k = 1, 3 for k = 3)
    reduction = "_mean_of_chunks" if k == 1 else "streaming_logmeanexp"
    with monkeypatch.context() as m:
        interrupt_after(m, reduction, 2 if k == 3 else 0)
        with pytest.raises(Interrupt):
            evaluate_row(model, guide, x, k=k, num_samples=40, num_estimates=3, seed=8, resume_dir=resume_dir)
    assert (resume_dir / "log_px.pt").exists()
    counted = interrupt_after(monkeypatch, "streaming_logmeanexp", 10 ** 6)
    row = evaluate_row(model, guide, x, k=k, num_samples=40, num_estimates=3, seed=8, resume_dir=resume_dir)
    assert torch.equal(row["log_px"], whole["log_px"]) and torch.equal(row["bound"], whole["bound"])
    assert counted["n"] == (0 if k == 1 else 2)  # k = 3: the IWAE-S and the first estimate read back
    assert list(resume_dir.iterdir()) == []


def test_finished_batches_reach_the_file_while_the_call_runs(linear_gaussian, tmp_path, monkeypatch):
    """A process killed outright (no exception to catch) still leaves the batches of its last write: with the
    write interval at 0, the file holds every finished batch before the next one is drawn."""
    monkeypatch.setattr(importlib.import_module("pyro_air.evaluate.resume"), "SAVE_EVERY_SECONDS", 0.0)
    model, x = linear_gaussian
    guide = ExactPosteriorGuide(model, scale_factor=0.6)
    path, seen = tmp_path / "partial.pt", []
    original = ll_module.streaming_logmeanexp

    def reduce(chunks):
        seen.append(sorted(torch.load(path, weights_only=True)["batches"]) if path.exists() else [])
        return original(chunks)

    monkeypatch.setattr(ll_module, "streaming_logmeanexp", reduce)
    log_likelihood(model, guide, x, num_samples=10, batch_size=4, seed=1, resume_file=path)
    assert seen == [[], [0], [0, 1], [0, 1, 2]]
    assert not path.exists()


def test_cli_evaluate_with_resume_dir_continues_an_interrupted_command(tiny_cli_run, tmp_path, capsys, monkeypatch):
    """`pyro-air evaluate RUN --resume-dir DIR`, cut in its ELBO pass and run again: the IWAE-S batches are read
    back, the table printed is the uninterrupted command's, and DIR is left empty."""
    from pyro_air.cli import main

    args = ["evaluate", str(tiny_cli_run), "--num-samples", "7", "--max-points", "150", "--no-progress"]
    assert main(args) == 0
    reference = capsys.readouterr().out
    resume = tmp_path / "resume"
    with monkeypatch.context() as m:
        interrupt_after(m, "_mean_of_chunks", 1)  # 150 images, batches of 100: the ELBO's second batch
        with pytest.raises(Interrupt):   # an unexpected error is not one of the CLI's one-line refusals
            main(args + ["--resume-dir", str(resume)])
    capsys.readouterr()
    assert {f.name for f in (resume / "test").iterdir()} == {"log_px.pt", "elbo.pt"}
    counted = interrupt_after(monkeypatch, "streaming_logmeanexp", 10 ** 6)
    assert main(args + ["--resume-dir", str(resume)]) == 0
    assert capsys.readouterr().out == reference
    assert counted["n"] == 0 and list(resume.iterdir()) == []


def test_cli_resume_dir_refuses_distributed(tiny_cli_run, tmp_path, capsys):
    from pyro_air.cli import main

    code = main(["evaluate", str(tiny_cli_run), "--num-samples", "7", "--distributed", "--resume-dir", str(tmp_path)])
    assert code != 0
    assert "--resume-dir keeps one process's batches; drop --distributed or --resume-dir" in capsys.readouterr().err
