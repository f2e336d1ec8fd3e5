"""The encoder family beside VAE, DVAE and WNI on the AIR k = 1 protocol (issue 20), at a CPU budget.

Methods (one decoder architecture; every encoder is x-d-d-z with tanh):
  VAE         plain Gaussian encoder                                     (Kingma & Welling 2014)
  DVAE        denoising encoder, alpha = 1, grid sigma                   (AIR, Shu et al. 2018, Eq. 13)
  WNI         weight-normalized encoder, grid H                          (AIR Eq. 17-18)
  DVAE+WNI    both AIR regularizers, sigma = 0.25, grid H                (not run in the AIR paper)
  CR          consistency penalty, shifts <= 2 px, grid lambda           (Sinha & Dieng 2021)
  SN          spectral-norm cap per layer, grid bound                    (Miyato et al. 2018)
  SA-full     semi-amortized, T = 3 SVI steps, backprop through them     (Kim et al. 2018)
  SA-stop     the same with the stop-gradient (first-order) variant
  Lagging     aggressive encoder phase stopped by mutual information, grid max inner steps (He et al. 2019)

Protocol (as experiments/air/run_air.py, k = 1): ELBO training on the nested 1000-image MNIST
subset, Adam with exponential decay, early stopping on the validation IWAE-20 bound (the same
rule for all); each method's hyper-parameter chosen on seed 0 by the best validation bound, then
seeds 0..2 at the chosen value; test: -log p(x) by IWAE-S, the inference gap log p(x) - ELBO,
the amortization gap (pyro_air.evaluate.amortization_gap), active units, I(x; z), KL(q(z|x) || p(z)),
training seconds per epoch; paired differences against the VAE on the same images and seeds.
The protocol and the methods are pyro_air.compare (ENCODER_FAMILY, the "cpu" budget); this
script gives it stages, a command line and the result files.

    python experiments/encoders/run.py --stage select          # seed-0 grids
    python experiments/encoders/run.py --stage seeds --seeds 1  # then any seeds (parallel processes ok)
    python experiments/encoders/run.py --stage report          # results.json, RESULTS tables, figure

Every file of a budget goes to results/<budget>/: benchmark.json, runs/, results.json, table.md,
encoders.png. Budgets: ``--budget cpu`` (default; 784-200-200-32, 80 epochs: the models still
under-fit; its runs/ is not tracked) and ``--budget overfit`` (784-500-500-50, 300 epochs: the
over-fitting regime of experiments/air, IWAE-5000 and AIS; the result.json and per-image test.pt
files under its runs/ are committed so the benchmark can span sessions). A rerun skips every
finished run (<runs>/<method>/<param>/seed<k>/). --smoke: a tiny budget, every file into
/tmp/encoders_smoke (the committed results stay as they are).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parents[1])]

from pyro_air import compare as benchmark

BUDGETS = ("cpu", "overfit")
GRIDS = {name: list(m.grid) for name, m in benchmark.ENCODER_FAMILY.items()}
SMOKE = {"epochs": 2, "valid_every": 1, "test_size": 20, "valid_size": 50, "test_num_samples": 20,
         "amortization": {"points": 5, "num_steps": 2, "num_particles": 2}}
TITLE = ("Encoder family on 1000 MNIST images (k = 1): paired differences against the VAE, mean ± s.e. over seeds"
         " (negative = better / smaller)")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--stage", choices=["select", "seeds", "report"], required=True)
    p.add_argument("--methods", default=",".join(GRIDS))
    p.add_argument("--seeds", default="1,2")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--budget", choices=BUDGETS, default="cpu",
                   help="cpu: 784-200-200-32, 80 epochs (default); overfit: 784-500-500-50, 300 epochs (default: %(default)s)")
    p.add_argument("--smoke", action="store_true", help="a tiny budget into /tmp, to check the script runs")
    args = p.parse_args(argv)
    out = HERE / "results" / args.budget
    budget = benchmark.budget(args.budget)
    if args.smoke:
        out = Path("/tmp/encoders_smoke") / args.budget
        budget = benchmark.budget(args.budget, **SMOKE, **({"ais": {"points": 5, "num_steps": 2, "num_chains": 2}}
                                                           if budget["ais"] else {}))
    torch.set_num_threads(args.threads)
    methods = args.methods.split(",")
    bench = benchmark.Benchmark(methods, budget=budget, out_dir=out)
    if args.stage == "select":
        bench.select()
    elif args.stage == "seeds":
        bench.run_seeds([int(s) for s in args.seeds.split(",")])
    else:
        report = bench.report()
        out.mkdir(parents=True, exist_ok=True)
        (out / "results.json").write_text(json.dumps({**report.to_json(), "grids": GRIDS}, indent=1))
        table = report.table()
        ais_table = report.ais_table()
        (out / "table.md").write_text(table + "\n" + (f"\n{ais_table}\n" if ais_table else ""))
        print(table)
        if ais_table:
            print(ais_table)
        if any(name != "VAE" and "d_nll" in e for name, e in report.summary.items()):
            import matplotlib

            matplotlib.use("Agg")
            report.plot(out / "encoders.png", title=TITLE)
    return 0


if __name__ == "__main__":
    sys.exit(main())
