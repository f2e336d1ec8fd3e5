"""Data given to objectives, guides and `fit`: bad batches (shape, dtype, NaN / inf), training sets and a
guide that does not fit its model.

Rows of the error table (docs/errors.md), run by tests/test_errors.py (tests/errors/__init__.py).
"""
import torch

from tests.errors.builders import binary, pair, tiny_fit
from tests.errors.table import Case, raised

TITLE = "Data given to objectives, guides and `fit`"


def _wrong_shape(tmp, mp):
    from pyro_air import infer
    return raised(infer.MonteCarloELBO().loss, *pair(), torch.zeros(4, 28, 28))


def _int_dtype(tmp, mp):
    from pyro_air import infer
    return raised(infer.MonteCarloELBO().loss, *pair(), torch.zeros(4, 784, dtype=torch.long))


def _int_dtype_fit(tmp, mp):
    return raised(tiny_fit, x=binary(50, 16).to(torch.uint8))


def _nan_data(tmp, mp):
    x = binary(50, 16)
    x[1, 3] = float("nan")
    return raised(tiny_fit, x=x)


def _inf_data(tmp, mp):
    from pyro_air import infer
    x = binary(4)
    x[2, 0] = float("inf")
    return raised(infer.IWAE_ELBO(num_particles=2).loss, *pair(), x)


def _grey_out_of_range(tmp, mp):
    return raised(tiny_fit, x=torch.rand(50, 16, generator=torch.Generator().manual_seed(0)) * 255,
                  dynamic_binarization=True)


def _empty(tmp, mp):
    return raised(tiny_fit, x=torch.zeros(0, 16))


def _batch_too_large(tmp, mp):
    return raised(tiny_fit, x=binary(10, 16), batch_size=100)


def _latent_mismatch(tmp, mp):
    from pyro_air.runs import build_run, vae_spec
    return raised(build_run, vae_spec(z_dim=8, guide_cfg={"z_dim": 4}))


def _latent_mismatch_fit(tmp, mp):
    from pyro_air import guides, infer, models
    from pyro_air.train import TrainConfig, fit
    model = models.build("bernoulli-vae", x_dim=16, z_dim=3, hidden=(8,))
    guide = guides.build("gaussian", x_dim=16, z_dim=2, hidden=(8,))
    return raised(fit, model, guide, infer.MonteCarloELBO(), binary(10, 16), config=TrainConfig(batch_size=5, progress=False))


CASES = [
    Case("wrong-shape", "x of the wrong shape, e.g. `[B, 28, 28]`", "ValueError",
         "GaussianEncoder expects x of shape [B, 784], got [4, 28, 28]; flatten images to [B, 784] (e.g. "
         "x.reshape(len(x), -1))", _wrong_shape),
    Case("integer-dtype", "x of an integer dtype (to an objective)", "TypeError",
         "GaussianEncoder expects a floating-point x (float32), got dtype torch.int64; convert with x.float()",
         _int_dtype),
    Case("integer-dtype-fit", "training data of an integer dtype (to `fit`)", "TypeError",
         "training data expects a floating-point x (float32), got dtype torch.uint8; convert with x.float()",
         _int_dtype_fit),
    Case("nan-data", "NaN in the data", "ValueError",
         "training data got NaN or inf in x; clean the data (e.g. torch.nan_to_num) first", _nan_data),
    Case("inf-data", "inf in the data", "ValueError",
         "GaussianEncoder got NaN or inf in x; clean the data (e.g. torch.nan_to_num) first", _inf_data),
    Case("grey-levels-out-of-range", "grey levels outside [0, 1] with dynamic binarization (e.g. 0-255 pixels)",
         "ValueError", "dynamic binarization draws Bernoulli(x) pixels, so the training data must be grey levels in "
         "[0, 1], but it has values in […]; rescale it (e.g. x / 255 for 8-bit images)", _grey_out_of_range),
    Case("empty-training-set", "an empty training set", "ValueError",
         "the training set is empty; load a dataset with at least one image", _empty),
    Case("batch-too-large", "batch size larger than the training set", "ValueError",
         "batch_size=100 is larger than the training set (10 points); lower batch_size or use more data",
         _batch_too_large),
    Case("guide-does-not-fit", "a guide whose latent size does not fit the model (`build_run`)", "ValueError",
         "guide GaussianEncoder (x_dim=784, z_dim=4) does not fit model BernoulliVAE (x_dim=784, z_dim=8); build "
         "the guide with the model's x_dim and z_dim", _latent_mismatch),
    Case("guide-does-not-fit-fit", "the same, passed to `fit`", "ValueError",
         "guide GaussianEncoder (x_dim=16, z_dim=2) does not fit model BernoulliVAE (x_dim=16, z_dim=3); build the "
         "guide with the model's x_dim and z_dim", _latent_mismatch_fit),
]
