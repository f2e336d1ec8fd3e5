"""Ship the seed-0 models of InfoVAE Table 1 with a PixelCNN decoder (experiments/infovae/pixelcnn_table.py)
in the package's zoo.

    python experiments/infovae/export_zoo.py               # every finished model not yet in the zoo
    python experiments/infovae/export_zoo.py --replace     # also re-export those already there
    python experiments/infovae/export_zoo.py --zoo DIR     # into another zoo (default: $PYRO_AIR_ZOO, else the package's)

The worker's first-schedule runs at seed 0, ELBO and MMD-VAE (alpha = 1, lambda = 1000), enter the zoo
under ``pixelcnn_table.ZOO_NAMES``, each from its run's ``best.pt`` (early-stopped on validation). Its ``test_numbers``
are what the worker measured on it (``pixelcnn_report.collect``):

- on the first test images: -log p(x) by IWAE-S and by the smaller IWAE beside it (mean and s.e. over the
  images), -L (the mean of the per-image ELBO draws);
- the latent metrics on the test images: I_q(x; z) (and its cap, log N), active units, E_x KL(q(z|x) || p(z))
  with its s.e., MMD(q(z), p(z)), log det Cov[q(z)] per dimension, and whether the code collapsed;
- for MMD-VAE, the paired difference MMD - ELBO on the same images at seed 0;
- IWAE-S on all test images once every chunk of the full-test task is on disk (``all_test``);
- the mean -log p of seeds 0-2 of the objective, once a second seed has finished.

The zoo's check (``zoo.export``) is IWAE with the worker's smaller sample count on the first 100 test
images: the PixelCNN decodes each sample pixel by pixel, so the default IWAE-1000 would take minutes here.
A model whose test evaluation (``per_image/<task>.json``) is missing is skipped with a note (nothing is
written); ``--replace`` re-exports models already there (e.g. to add the all-test number).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent), str(HERE.parents[1])]
import pixelcnn_report  # noqa: E402
import pixelcnn_table  # noqa: E402
from plan_worker import UNNAMED_CPU, export_main, mean_se_record as _ms, seed_levels  # noqa: E402

from pyro_air import zoo  # noqa: E402

CHECK_POINTS = 100


def test_numbers(out: Path, task: str, s: dict) -> dict | None:
    """What the worker measured on ``task``'s model (module docstring), or None until its test evaluation is
    on disk. ``s``: the worker's sizes (``pixelcnn_table.SCALES``)."""
    rows = pixelcnn_report.collect(out, pixelcnn_table.PLAN, s)
    r = rows.get(task, {})
    if "nll" not in r:
        return None
    S, lat = s["test_samples"], r["latent"]
    numbers = {"test_images": r["points"], f"nll_iwae{S}": _ms(r["nll"]),
               f"nll_iwae{s['check_samples']}": _ms(r["nll_check"]), "neg_bound": _ms(r["neg_elbo"]),
               "bound_draws": s["bound_draws"],
               "latent": {"test_images": lat["points"], "mutual_information": round(lat["mutual_information"], 4),
                          "mi_cap": round(lat["mi_cap"], 4), "active_units": lat["active_units"],
                          "z_dim": lat["z_dim"], "kl": _ms((lat["kl"], lat["kl_se"])), "mmd": round(lat["mmd"], 6),
                          "log_det_cov_per_dim": round(lat["log_det_cov_per_dim"], 4), "collapsed": r["collapsed"]}}
    pairs = pixelcnn_report.paired(rows).get(r["variant"], {"seeds": {}, "full": {}})
    if r["method"] == "mmd" and r["seed"] in pairs["seeds"]:
        numbers["mmd_minus_elbo_paired"] = _ms(pairs["seeds"][r["seed"]])
    if "nll_full" in r:
        numbers["all_test"] = {"test_images": len(r["_log_px_full"]), f"nll_iwae{S}": _ms(r["nll_full"])}
        if r["method"] == "mmd" and r["seed"] in pairs["full"]:
            numbers["all_test"]["mmd_minus_elbo_paired"] = _ms(pairs["full"][r["seed"]])
    seeds = seed_levels(rows, r["method"])
    if len(seeds) > 1:
        numbers["seeds"] = seeds
    return numbers


def export_task(out: Path, task: str, name: str, s: dict, root=None) -> dict | None:
    """Export ``task``'s run as zoo entry ``name`` (``root``: the zoo directory, default ``$PYRO_AIR_ZOO`` or the
    package's); None (nothing written) while its test evaluation is not on disk."""
    numbers = test_numbers(out, task, s)
    if numbers is None:
        return None
    run_dir = out / "runs" / task
    train = json.loads((run_dir / "train.json").read_text())
    t, spec = train["task"], train["spec"]
    dec, enc = spec["model"]["cfg"], spec["guide"]["cfg"]
    conv = "-".join(str(c) for c in enc["channels"])
    return zoo.export(
        run_dir, name, seed=t["seed"], root=root, check_points=min(CHECK_POINTS, s["test_points"]),
        check_samples=s["check_samples"],
        description=f"InfoVAE Table 1 {pixelcnn_table.METHODS[t['method']]['label']}: gated PixelCNN decoder "
                    f"({dec['channels']} channels x {dec['num_layers']} layers, kernel {dec['kernel_size']}), "
                    f"z = {dec['z_dim']}, convolutional Gaussian encoder ({conv} channels, "
                    f"{enc['hidden']} units), statically binarized MNIST, {train['epochs']} epochs, early-stopped "
                    f"on validation at epoch {train['best_epoch']}",
        command=f"python experiments/infovae/pixelcnn_table.py --worker --threads 1   # task {task}",
        budget={"epochs": train["epochs"], "train_size": 50000 if s["train_size"] is None else s["train_size"],
                "batch_size": s["batch_size"], "objective": spec["objective"],
                "early_stopping": f"validation IWAE-{s['valid_samples']} on the first {s['valid_size']} validation "
                                  f"images every {s['valid_every']} epochs",
                "training_seconds": round(train["epoch_seconds_sum"]), "cpu": train.get("cpu", UNNAMED_CPU)},
        test_numbers=numbers)


def main(argv=None) -> int:
    return export_main(export_task, pixelcnn_table.ZOO_NAMES, pixelcnn_table.SCALES, pixelcnn_table.OUT, __doc__, argv)


if __name__ == "__main__":
    sys.exit(main())
