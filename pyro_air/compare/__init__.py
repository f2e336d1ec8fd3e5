"""One comparison protocol for amortized encoders: every method trained and tested the same way, and
compared with a baseline (the plain VAE) by paired differences. It serves ``pyro-air compare``, the
encoder benchmark (``experiments/encoders``), the tutorials and the experiments.

Modules: ``budgets`` (the presets; the notebooks' ``budget_from_env``), ``methods`` (``Method``,
``ENCODER_FAMILY``, the AIR methods' run specs ``air_spec``), ``evaluation`` (a table row per image:
``evaluate_row``), ``report`` (``paired_difference``, the one implementation; ``Report``), ``runner``
(``Benchmark``), ``air`` (AIR's comparison at a small budget, ``pyro-air compare``: ``compare_air``,
``AirComparison``), ``notebooks`` (``fresh_run_dir``, ``strip_outputs``).

The protocol (AIR k = 1, as ``experiments/air/run_air.py``; issue 20) is the same for every method:

1. **One decoder.** Each run builds the model ``models.build(model_name, x_dim, z_dim, hidden)``
   right after ``torch.manual_seed(seed)``, then the method's guide: runs of one seed start from the
   same decoder weights whatever the encoder.
2. **One training rule.** ``pyro_air.train.fit`` with the budget's epochs, batch size, Adam with
   exponential decay from ``lr`` to ``lr * lr_final_ratio``, and early stopping on the validation
   IWAE-``valid_num_samples`` bound every ``valid_every`` epochs (the best parameters are kept).
   The seed also fixes the minibatch order, so two methods of one seed see the same batches.
3. **Selection on validation.** Each method's hyper-parameter is chosen from its grid on
   ``SELECTION_SEED`` (0) by the best validation bound; the other seeds run at the chosen value.
4. **One test.** On the same test images: -log p(x) by IWAE-S (``test_num_samples``), the ELBO by
   ``elbo_samples`` draws, the inference gap log p(x) - ELBO (AIR Eq. 8), the amortization gap on
   the first ``amortization["points"]`` images (``pyro_air.evaluate.amortization_gap``: Cremer et
   al. 2018), active units and I(x; z) (``pyro_air.evaluate.latent_metrics``), KL(q(z|x) || N(0, I)),
   and the training seconds per epoch. Where the budget has an ``ais`` entry, also -log p(x) by
   annealed importance sampling from q(z|x) on the first ``ais["points"]`` images (Neal 2001;
   ``pyro_air.evaluate.ais``), an MCMC estimate that does not lean on the encoder as IWAE does.
5. **Paired differences.** Each test quantity minus the baseline's on the same image and seed,
   averaged (``paired_difference``); pairing removes the spread that seeds and images share.

A *method* is a name, a grid of hyper-parameter values and a builder ``build(param, setup)`` that
returns the guide (or ``Components(guide, objective, schedule)``: the objective, default the ELBO,
and a training-step hook, e.g. the lagging encoder's ``LaggingSchedule``) for the decoder
``setup.model``. ``ENCODER_FAMILY`` holds the nine methods of ``experiments/encoders``; a new
encoder is one decorated function:

    bench = Benchmark(["VAE", "DVAE"], budget=budget("tiny"), out_dir="runs/bench")

    @bench.method("InputDropout", grid=[0.1, 0.3], param_name="p")
    def input_dropout(p, setup):
        return MyEncoder(p=p, **setup.encoder)

    report = bench.run()            # select, the other seeds, report
    print(report.paired_table())

Runs are stored as ``out_dir/runs/<method>/<param>/seed<k>/{result.json, test.pt}`` and a rerun
skips those on disk (delete them after changing a builder); ``out_dir/benchmark.json`` records the
budget, model and data, and a benchmark with other settings refuses that directory.

Layer: above ``pyro_air.runs`` (it trains with ``pyro_air.train`` and evaluates with
``pyro_air.evaluate``), beside ``pyro_air.zoo``; only the command line imports it. ``benchmarks/``
(speed) is another thing.
"""
from pyro_air.compare.air import AIR_COLUMNS, AirComparison, AirComparisonResult, compare_air
from pyro_air.compare.budgets import (
    BUDGET_ENV,
    BUDGET_NAMES,
    BUDGETS,
    DEFAULT_BUDGET,
    budget,
    budget_from_env,
    check_budget,
)
from pyro_air.compare.evaluation import bound_per_datapoint, evaluate_row, kl_to_standard_normal
from pyro_air.compare.methods import (
    ENCODER_FAMILY,
    Components,
    Method,
    ParamValue,
    Setup,
    air_spec,
    method,
    name_tag,
    param_tag,
)
from pyro_air.compare.notebooks import fresh_run_dir, strip_outputs
from pyro_air.compare.report import (
    OVER_SEEDS,
    OVER_SEEDS_AIS,
    PAIRED,
    PAIRED_AIS,
    Report,
    over_seeds,
    paired_difference,
    paired_estimate,
)
from pyro_air.compare.runner import RECORD_KEYS, SELECTION_SEED, TEST_SEED_OFFSET, Benchmark

__all__ = [
    "AIR_COLUMNS", "AirComparison", "AirComparisonResult", "BUDGETS", "BUDGET_ENV", "BUDGET_NAMES", "DEFAULT_BUDGET", "ENCODER_FAMILY", "OVER_SEEDS", "OVER_SEEDS_AIS",
    "PAIRED", "PAIRED_AIS", "RECORD_KEYS", "SELECTION_SEED", "TEST_SEED_OFFSET", "Benchmark", "Components",
    "Method", "ParamValue", "Report", "Setup", "air_spec", "bound_per_datapoint", "budget", "budget_from_env",
    "check_budget", "compare_air", "evaluate_row", "fresh_run_dir", "kl_to_standard_normal", "method", "name_tag",
    "over_seeds", "paired_difference", "paired_estimate", "param_tag", "strip_outputs",
]
