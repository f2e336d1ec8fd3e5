"""Your own data (pyro_air/data/own.py): .npz / .npy files and Datasets, binary or grey, each trains one
step under every objective with the likelihood that fits it; the CLI's --data / --likelihood."""
import numpy as np
import pytest
import torch

from pyro_air import data, infer
from pyro_air.cli import main
from pyro_air.data import DataFileError, dataset_tensor, load_file
from pyro_air.runs import build_run, load_split, vae_spec
from pyro_air.train import TrainConfig, checkpoints, fit

RNG = np.random.RandomState(0)
GREY_U8 = (RNG.rand(30, 3, 4) * 255).astype(np.uint8)          # 8-bit images [N, H, W]
BINARY = RNG.rand(30, 12) > 0.5                                 # bool
REAL = RNG.randn(30, 12)                                        # float64, unbounded


def write(tmp_path, name, **arrays):
    path = tmp_path / name
    if name.endswith(".npy"):
        np.save(path, next(iter(arrays.values())))
    else:
        np.savez(path, **arrays)
    return path


def test_npy_uint8_images_are_flattened_scaled_and_split_80_10_10(tmp_path):
    path = write(tmp_path, "grey.npy", x=GREY_U8)
    full = load_file(path)
    assert full.shape == (30, 12) and full.dtype == torch.float32
    assert torch.equal(full, torch.from_numpy(GREY_U8.reshape(30, 12).astype(np.float32) / 255))
    splits = {s: load_file(path, s) for s in ("train", "valid", "test")}
    assert [len(splits[s]) for s in ("train", "valid", "test")] == [24, 3, 3]
    rows = torch.cat(list(splits.values()))  # a partition of the rows, the same on every call
    assert sorted(map(tuple, rows.tolist())) == sorted(map(tuple, full.tolist()))
    assert torch.equal(load_file(path, "valid"), splits["valid"])


def test_npz_with_split_arrays_keeps_them_and_holds_out_what_is_missing(tmp_path):
    path = write(tmp_path, "s.npz", train=BINARY[:20], test=BINARY[20:])
    assert torch.equal(load_file(path, "test"), torch.from_numpy(BINARY[20:].astype(np.float32)))
    train, valid = load_file(path, "train"), load_file(path, "valid")
    assert len(valid) == 2 and len(train) == 18  # 10 % of the train array held out for validation
    rows = sorted(map(tuple, torch.cat([train, valid]).tolist()))  # a partition of the train array
    assert rows == sorted(map(tuple, torch.from_numpy(BINARY[:20].astype(np.float32)).tolist()))
    assert torch.equal(load_file(write(tmp_path, "all.npz", train=BINARY[:20], valid=BINARY[20:25],
                                       test=BINARY[25:]), "train"), torch.from_numpy(BINARY[:20].astype(np.float32)))


def test_dataset_of_tensors_and_of_image_label_pairs(tmp_path):
    images = torch.from_numpy(GREY_U8)
    pairs = torch.utils.data.TensorDataset(images.float() / 255, torch.arange(30))
    expected = images.reshape(30, -1).float() / 255
    assert torch.allclose(dataset_tensor(pairs), expected)
    assert torch.allclose(dataset_tensor(list(images)), expected)  # uint8 items scaled by 1/255


@pytest.mark.parametrize("name,arrays,message", [
    ("x.csv", None, "reads .npz and .npy files"),
    ("missing.npy", None, "not found"),
    ("text.npy", {"x": np.array(["a", "b"])}, "not numbers"),
    ("nan.npz", {"x": np.array([[0.0, np.nan]])}, "NaN or infinite"),
    ("two.npz", {"a": REAL, "b": REAL}, "name the datapoints 'x'"),
])
def test_bad_files_are_refused_with_what_to_do(tmp_path, name, arrays, message):
    path = write(tmp_path, name, **arrays) if arrays else tmp_path / name
    if name == "x.csv":
        path.write_text("1,2\n")
    with pytest.raises(DataFileError, match=message):
        load_file(path)


CASES = {  # file, likelihood -> the data the model sees
    "binary-npz-bernoulli": ("b.npz", {"x": BINARY}, "bernoulli"),
    "grey-npy-bernoulli": ("g.npy", {"x": GREY_U8}, "bernoulli"),  # statically binarized
    "grey-npy-continuous-bernoulli": ("g.npy", {"x": GREY_U8}, "continuous-bernoulli"),
    "real-npz-gaussian": ("r.npz", {"train": REAL[:24], "valid": REAL[24:], "test": REAL[24:]}, "gaussian"),
}
OBJECTIVES = {"elbo": {}, "iwae": {"num_particles": 3}, "renyi": {"alpha": 0.5, "num_particles": 3},
              "infovae": {"lam": 10.0}}


@pytest.mark.parametrize("objective", sorted(OBJECTIVES))
@pytest.mark.parametrize("case", sorted(CASES))
def test_each_format_trains_one_step(tmp_path, case, objective):
    name, arrays, likelihood = CASES[case]
    path = write(tmp_path, name, **arrays)
    spec = vae_spec(dataset="file", data_path=path, x_dim=data.file_dimension(path), likelihood=likelihood,
                    z_dim=2, hidden=(8,), objective=objective, objective_cfg=OBJECTIVES[objective])
    model, guide, obj = build_run(spec, seed=0)
    train_x, valid_x = load_split(spec, "train"), load_split(spec, "valid")
    if likelihood == "bernoulli":
        assert ((train_x == 0) | (train_x == 1)).all()
    elif likelihood == "continuous-bernoulli":
        assert torch.equal(train_x, load_file(path, "train"))  # grey levels as stored
    before = [p.detach().clone() for p in model.parameters()]
    result = fit(model, guide, obj, train_x, valid_x, TrainConfig(epochs=1, batch_size=len(train_x),
                                                                  valid_num_samples=3, progress=False))
    assert result.steps == 1 and np.isfinite(result.history[0]["train_loss"])
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))


@pytest.mark.parametrize("likelihood,model_name", [("bernoulli", "bernoulli-vae"),
                                                    ("continuous-bernoulli", "continuous-bernoulli-vae"),
                                                    ("gaussian", "gaussian-mlp-vae")])
def test_cli_train_on_a_file_then_evaluate(tmp_path, capsys, likelihood, model_name):
    path = write(tmp_path, "grey.npy", x=GREY_U8)
    run = tmp_path / "run"
    assert main(["train", "--data", str(path), "--likelihood", likelihood, "--epochs", "1", "--batch-size", "8",
                 "--z-dim", "2", "--hidden", "8", "--valid-num-samples", "3", "--no-progress",
                 "--run-dir", str(run)]) == 0
    spec = checkpoints.load(run)["spec"]
    assert spec["model"]["name"] == model_name and spec["model"]["cfg"]["x_dim"] == 12
    assert spec["data"]["path"] == str(path)
    assert main(["evaluate", str(run), "--num-samples", "5", "--no-progress"]) == 0
    assert "test (n=3)" in capsys.readouterr().out


def test_cli_refuses_data_with_dataset_and_dynamic_binarization_of_grey_likelihoods(tmp_path, capsys):
    path = write(tmp_path, "grey.npy", x=GREY_U8)
    assert main(["train", "--data", str(path), "--dataset", "omniglot", "--run-dir", str(tmp_path / "a")]) == 2
    assert "both name the data; give one" in capsys.readouterr().err
    assert main(["train", "--likelihood", "gaussian", "--dynamic-binarization", "--run-dir", str(tmp_path / "b")]) == 2
    assert "drop --dynamic-binarization" in capsys.readouterr().err


def test_unknown_likelihood_is_refused():
    with pytest.raises(ValueError, match="unknown likelihood 'poisson'; use one of bernoulli"):
        vae_spec(likelihood="poisson")
    assert infer.OBJECTIVES.names()  # the registry the test's objectives come from


@pytest.mark.parametrize("guide,inner", [("gaussian", "ConvGaussianEncoder"), ("denoising", "ConvGaussianEncoder"),
                                         ("weightnorm", None)])
def test_cli_conv_nets_on_a_file_train_one_step_and_evaluate(tmp_path, capsys, guide, inner):
    from pyro_air.runs import load_run

    path = write(tmp_path, "grey.npy", x=GREY_U8)  # 3 x 4 images
    run = tmp_path / "run"
    extra = ["--guide-cfg", '{"sigma": 0.1}'] if guide == "denoising" else []
    assert main(["train", "--data", str(path), "--likelihood", "continuous-bernoulli", "--net", "conv",
                 "--image-shape", "3", "4", "--guide", guide, *extra, "--epochs", "1", "--batch-size", "24",
                 "--z-dim", "2", "--hidden", "8", "--valid-num-samples", "3", "--no-progress",
                 "--run-dir", str(run)]) == 0
    model, trained_guide, spec = load_run(run)
    assert spec["model"]["name"] == "conv-continuous-bernoulli-vae" and model.decoder.image_shape == (3, 4)
    encoder = getattr(trained_guide, "encoder", trained_guide)
    if inner is not None:
        assert type(encoder).__name__ == inner and encoder.image_shape == (3, 4)
    assert checkpoints.load(run)["step"] == 1
    assert main(["evaluate", str(run), "--num-samples", "5", "--no-progress"]) == 0
    assert "test (n=3)" in capsys.readouterr().out


def test_conv_net_has_no_gaussian_likelihood():
    with pytest.raises(ValueError, match="use net='mlp' for 'gaussian'"):
        vae_spec(net="conv", likelihood="gaussian")
