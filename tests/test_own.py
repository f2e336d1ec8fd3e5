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


@pytest.mark.parametrize("dtype", [np.uint8, np.int64, np.int8])
def test_integer_arrays_of_only_0_and_1_are_binary_not_divided_by_255(tmp_path, capsys, dtype):
    """issue 36: uint8 0/1 images were divided by 255 (p = 1/255 after binarization; a positive
    'log density' 3129.60 in training)."""
    binary = BINARY.astype(dtype)
    x = load_file(write(tmp_path, "b.npz", train=binary[:20], test=binary[20:]), "train")
    assert set(x.unique().tolist()) == {0.0, 1.0}
    assert torch.equal(torch.cat([x, load_file(tmp_path / "b.npz", "valid")]).sum(), torch.tensor(float(binary[:20].sum())))
    assert capsys.readouterr().err == ""  # binary data: nothing to say


def test_other_integer_ranges_are_stated_in_a_one_line_notice(tmp_path, capsys):
    grey = load_file(write(tmp_path, "grey.npy", x=GREY_U8))
    assert torch.equal(grey, torch.from_numpy(GREY_U8.reshape(30, 12).astype(np.float32) / 255))
    lo, hi = int(GREY_U8.min()), int(GREY_U8.max())
    err = capsys.readouterr().err.splitlines()
    assert err == [f"pyro-air: note: {tmp_path / 'grey.npy'} holds integers {lo}..{hi} (uint8): read as 8-bit grey "
                   "levels and divided by 255; save binary data as 0/1"]
    counts = np.arange(36).reshape(3, 12) % 10                     # int64 0..9: kept as they are
    x = load_file(write(tmp_path, "counts.npy", x=counts))
    assert torch.equal(x, torch.from_numpy(counts.astype(np.float32)))
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and "holds integers 0..9 (int64): used as they are, not scaled" in err[0]
    load_file(tmp_path / "counts.npy", "train")                      # the same notice is given once
    assert capsys.readouterr().err == ""


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


# -- multi-channel images (C, H, W) through the convolutional nets ------------------------------------
RGB_FIRST = (RNG.rand(20, 3, 5, 6) * 255).astype(np.uint8)       # [N, C, H, W] 8-bit RGB
RGB_LAST = RNG.rand(20, 5, 6, 3).astype(np.float32)              # [N, H, W, C] as image libraries store it
# small configs of the registered objectives; every registered objective runs below, one not listed
# here with its defaults (add it where those are slow or need options)
OBJECTIVE_CONFIGS = {"avo": {"num_transitions": 2}, "ciwae": {"num_particles": 3}, "cubo": {"num_particles": 3},
                     "infovae": {"lam": 10.0}, "iwae": {"num_particles": 3},
                     "miwae": {"num_groups": 2, "group_size": 2}, "piwae": {"num_groups": 2, "group_size": 2},
                     "renyi": {"alpha": 0.5, "num_particles": 3}}
RGB_CASES = {  # file, likelihood
    "channel-first-npz-bernoulli": ("first.npz", {"x": RGB_FIRST}, "bernoulli"),
    "channel-first-npz-continuous-bernoulli": ("first.npz", {"x": RGB_FIRST}, "continuous-bernoulli"),
    "channel-last-npy-gaussian": ("last.npy", {"x": RGB_LAST}, "gaussian"),
}


EVERY_OBJECTIVE = {name: OBJECTIVE_CONFIGS.get(name, {}) for name in infer.OBJECTIVES.names()}


def test_every_listed_objective_config_is_of_a_registered_objective():
    stale = sorted(set(OBJECTIVE_CONFIGS) - set(infer.OBJECTIVES.names()))
    assert not stale, f"OBJECTIVE_CONFIGS in tests/test_own.py lists objectives that are not registered: {stale}"


def test_channel_last_images_are_laid_out_channel_first(tmp_path):
    last, first = write(tmp_path, "last.npy", x=RGB_LAST), write(tmp_path, "first.npy", x=RGB_LAST.transpose(0, 3, 1, 2))
    assert torch.equal(load_file(last), load_file(first))
    assert data.file_shape(last) == data.file_shape(first) == (3, 5, 6)
    assert data.file_shape(write(tmp_path, "grey.npy", x=GREY_U8)) == (3, 4)
    assert data.file_shape(write(tmp_path, "flat.npz", train=BINARY)) == (12,)
    x = load_file(write(tmp_path, "u8.npz", x=RGB_FIRST))
    assert x.shape == (20, 90) and torch.equal(x[:, :30], torch.from_numpy(RGB_FIRST[:, 0].reshape(20, 30) / 255.0).float())
    # PIL-like [H, W, 3] items of a Dataset become channel-first rows too
    assert torch.equal(dataset_tensor(list(RGB_LAST)), load_file(first))


@pytest.mark.parametrize("objective", sorted(EVERY_OBJECTIVE))
@pytest.mark.parametrize("case", sorted(RGB_CASES))
def test_multichannel_images_train_one_step_with_the_conv_nets(tmp_path, case, objective):
    name, arrays, likelihood = RGB_CASES[case]
    path = write(tmp_path, name, **arrays)
    shape = data.file_shape(path)
    guide, guide_cfg = ("hierarchical", {"num_transitions": 2}) if objective == "avo" else ("gaussian", {})
    if objective == "consistency":
        guide, guide_cfg = "consistency", {"encoder": {"name": "conv-gaussian", "cfg": {"image_shape": list(shape)}},
                                           "hidden": 8, "transform": "identity"}
    spec = vae_spec(dataset="file", data_path=path, x_dim=data.file_dimension(path), likelihood=likelihood, z_dim=2,
                    hidden=(8,), objective=objective, objective_cfg=EVERY_OBJECTIVE[objective], net="conv",
                    image_shape=shape, guide=guide, guide_cfg=guide_cfg)
    model, guide, obj = build_run(spec, seed=0)
    assert shape == (3, 5, 6) and model.decoder.out_channels == (6 if likelihood == "gaussian" else 3)
    encoder = getattr(guide, "encoder", guide)
    if objective != "avo":
        assert encoder.convs[0].in_channels == 3
    train_x, valid_x = load_split(spec, "train"), load_split(spec, "valid")
    before = [p.detach().clone() for p in guide.parameters()]  # (CUBO trains the guide alone)
    result = fit(model, guide, obj, train_x, valid_x, TrainConfig(epochs=1, batch_size=len(train_x),
                                                                  valid_num_samples=3, progress=False))
    assert result.steps == 1 and np.isfinite(result.history[0]["train_loss"])
    assert any(not torch.equal(a, b) for a, b in zip(before, guide.parameters()))


def test_cli_conv_on_rgb_takes_the_files_image_shape(tmp_path, capsys):
    from pyro_air.runs import load_run

    path = write(tmp_path, "last.npy", x=RGB_LAST)
    run = tmp_path / "run"
    assert main(["train", "--data", str(path), "--likelihood", "gaussian", "--net", "conv", "--epochs", "1",
                 "--batch-size", "16", "--z-dim", "2", "--hidden", "8", "--valid-num-samples", "3", "--no-progress",
                 "--run-dir", str(run)]) == 0
    model, guide, spec = load_run(run)
    assert spec["model"]["name"] == "conv-gaussian-vae" and spec["model"]["cfg"]["image_shape"] == [3, 5, 6]
    assert model.decoder.image_shape == (3, 5, 6) and guide.input_shape == (3, 5, 6)
    assert main(["evaluate", str(run), "--num-samples", "5", "--no-progress"]) == 0
    assert "test (n=2)" in capsys.readouterr().out
    assert main(["train", "--data", str(path), "--net", "conv", "--image-shape", "3", "5", "6", "1",
                 "--run-dir", str(tmp_path / "bad")]) == 2
    assert "--image-shape takes H W or C H W, got 4 numbers" in capsys.readouterr().err


def test_objectives_without_num_particles_take_their_own_sample_counts():
    spec = vae_spec(objective="miwae", objective_cfg={"num_groups": 2, "group_size": 2})
    assert spec["objective"]["cfg"] == {"num_groups": 2, "group_size": 2}
    with pytest.raises(ValueError, match="objective 'piwae' takes no num_particles"):
        vae_spec(objective="piwae", num_particles=8)
