"""The benchmark's pythae peer (benchmarks/evaluation.py) wraps the same model and guide: pythae's
own get_nll estimates the same log p(x) as pyro-air's log_likelihood. Runs only where pythae is
installed (``pip install -e ".[peers]"``); CI does not install it."""
import pytest
import torch

pytest.importorskip("pythae")

from benchmarks.evaluation import PythaeGetNLL, pythae_vae
from pyro_air import guides, models
from pyro_air.evaluate import log_likelihood


def test_pythae_wraps_the_same_model_and_guide_and_estimates_the_same_log_likelihood():
    torch.manual_seed(0)
    model = models.build("bernoulli-vae", z_dim=3, hidden=(20,)).eval()
    guide = guides.build("gaussian", z_dim=3, hidden=(20,)).eval()
    x = torch.bernoulli(torch.full((4, 784), 0.2), generator=torch.Generator().manual_seed(1))
    vae = pythae_vae(model, guide)
    loc, scale = guide.loc_scale(x)
    out = vae.encoder(x)
    torch.testing.assert_close(out.embedding, loc)
    torch.testing.assert_close(out.log_covariance.exp().sqrt(), scale)
    z = torch.randn(5, 3)
    torch.testing.assert_close(vae.decoder(z).reconstruction, torch.sigmoid(model.decoder(z)))
    torch.manual_seed(2)
    theirs = PythaeGetNLL(model, guide, x, len(x), 20000)()  # mean log p(x) over the block
    ours = log_likelihood(model, guide, x, num_samples=20000, seed=0).mean().item()
    assert abs(theirs - ours) < 0.1  # nats; two seeds of ours differ by ~0.015 here
