"""Helpers shared by the checkpoint, resume, signal and reproducibility tests."""
import torch

from pyro_air import guides, infer, models
from pyro_air.train import TrainConfig, fit
from pyro_air.train import checkpoints as checkpoint
from tests import resume_worker


def assert_same_tensors(a, b):
    """Equal nested dicts/lists of tensors and plain values (bit-identical tensors)."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and torch.equal(a, b)
    elif isinstance(a, dict):
        assert a.keys() == b.keys()
        for k in a:
            assert_same_tensors(a[k], b[k])
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            assert_same_tensors(x, y)
    else:
        assert a == b


def assert_same_run(dir_a, dir_b):
    a, b = checkpoint.load(dir_a), checkpoint.load(dir_b)
    for key in ("model_state", "guide_state", "optimizer_state", "scheduler_state", "best_state", "early_stopping"):
        assert_same_tensors(a[key], b[key])
    assert a["step"] == b["step"]
    strip = [{k: v for k, v in r.items() if k != "epoch_seconds"} for r in a["history"]]
    assert strip == [{k: v for k, v in r.items() if k != "epoch_seconds"} for r in b["history"]]
    assert_same_tensors(checkpoint.load(dir_a / "best.pt")["model_state"],
                         checkpoint.load(dir_b / "best.pt")["model_state"])


def tiny_run(run_dir, resume=False, **overrides):
    torch.manual_seed(0)
    model = models.build("bernoulli-vae", x_dim=20, z_dim=2, hidden=(8,))
    guide = guides.build("gaussian", x_dim=20, z_dim=2, hidden=(8,))
    train_x, valid_x = resume_worker.data()
    config = TrainConfig(**{**resume_worker.CONFIG, **overrides})
    fit(model, guide, infer.build("iwae", num_particles=2), train_x, valid_x, config, run_dir=run_dir,
        spec=resume_worker.SPEC, resume=resume)
    return model, guide
