"""Small things the error triggers of several surfaces build: a model and guide, binary data, a tiny
training run, objectives that turn non-finite on cue, a tiny zoo."""
import torch


def pair(z=4):
    from pyro_air import guides, models

    return models.build("bernoulli-vae", z_dim=z, hidden=(16,)), guides.build("gaussian", z_dim=z, hidden=(16,))


def binary(n=8, d=784):
    return torch.bernoulli(torch.full((n, d), 0.3), generator=torch.Generator().manual_seed(0))


def tiny_fit(run_dir=None, objective=None, resume=False, x=None, **config):
    from pyro_air import guides, infer, models
    from pyro_air.train import TrainConfig, fit

    torch.manual_seed(0)
    model = models.build("bernoulli-vae", x_dim=16, z_dim=2, hidden=(8,))
    guide = guides.build("gaussian", x_dim=16, z_dim=2, hidden=(8,))
    config = TrainConfig(**{"epochs": 2, "batch_size": 5, "lr": 1e-2, "checkpoint_every_steps": 4, "progress": False,
                            **config})
    x = binary(50, 16) if x is None else x
    return fit(model, guide, objective or infer.MonteCarloELBO(), x, config=config, run_dir=run_dir, resume=resume)


class BadAt:
    """Delegates to an objective; from the given calls on, the loss is NaN (or the gradient inf)."""

    def __init__(self, calls, gradient=False):
        from pyro_air import infer

        self.objective, self.bad, self.gradient, self.calls = infer.MonteCarloELBO(), set(calls), gradient, 0

    def differentiable_loss(self, *args, **kwargs):
        self.calls += 1
        loss = self.objective.differentiable_loss(*args, **kwargs)
        if self.calls not in self.bad:
            return loss
        if self.gradient:
            loss = loss.clone()
            loss.register_hook(lambda grad: grad * float("inf"))
            return loss
        return loss * float("nan")


def tiny_zoo(tmp, mp):
    """A zoo at tmp/zoo holding "tiny" (untrained weights; its check on 4 given images), as $PYRO_AIR_ZOO."""
    from pyro_air import zoo
    from pyro_air.runs import build_run, vae_spec
    from pyro_air.train import checkpoints as checkpoint

    spec = vae_spec(z_dim=2, hidden=(8,))
    model, guide, _ = build_run(spec, seed=0)
    checkpoint.atomic_save({"format_version": checkpoint.FORMAT_VERSION, "spec": spec, "epoch": 0,
                            "model_state": model.state_dict(), "guide_state": guide.state_dict()}, tmp / "best.pt")
    zoo.export(tmp / "best.pt", "tiny", description="untrained", command="tests/errors", budget={},
               test_numbers={}, test_x=binary(4), check_points=4, check_samples=5, seed=0, root=tmp / "zoo")
    mp.setenv("PYRO_AIR_ZOO", str(tmp / "zoo"))
    return tmp / "zoo" / "weights" / "tiny.pt"
