"""The encoder benchmark (`pyro_air.compare`): benchmark methods, grids and output folders.

Rows of the error table (docs/errors.md), run by tests/test_errors.py (tests/errors/__init__.py).
"""

from tests.errors.builders import binary
from tests.errors.table import Case, raised

TITLE = "The encoder benchmark (`pyro_air.compare`)"


def _benchmark(tmp, methods=(), epochs=1):
    from pyro_air import compare as benchmark

    x = binary(20, 16)
    size = benchmark.budget("tiny", train_size=20, batch_size=10, hidden=[8], z_dim=2, epochs=epochs,
                            test_num_samples=4, amortization={"points": 2, "num_steps": 1})
    return benchmark.Benchmark(methods, budget=size, out_dir=tmp / "bench", data=(x, x, x), log=None)


def _benchmark_unknown_method(tmp, monkeypatch):
    return raised(_benchmark, tmp, ["VAE", "Nope"])


def _benchmark_empty_grid(tmp, monkeypatch):
    from pyro_air import compare as benchmark

    return raised(benchmark.method("Mine", grid=[]), lambda p, setup: None)


def _benchmark_rejected_value(tmp, monkeypatch):
    from pyro_air import guides

    bench = _benchmark(tmp)
    bench.method("Mine", grid=[0.5, -1.0], param_name="σ")(
        lambda sigma, setup: guides.build("denoising", sigma=sigma, encoder="gaussian", **setup.encoder))
    return raised(bench.select)


def _benchmark_other_settings(tmp, monkeypatch):
    _benchmark(tmp, ["VAE"]).run_one("VAE", None, 0)
    return raised(_benchmark(tmp, ["VAE"], epochs=2).run_one, "VAE", None, 1)


CASES = [
    Case("benchmark-unknown-method", "a method name the benchmark does not know", "ValueError",
         "unknown method 'Nope'; the built-in ones are VAE, DVAE, WNI, DVAE+WNI, CR, SN, SA-full, SA-stop, Lagging; "
         "add your own with Benchmark.method(name, grid)(builder)", _benchmark_unknown_method),
    Case("benchmark-empty-grid", "a benchmark method with an empty grid", "ValueError",
         "method 'Mine' has an empty grid; give at least one value (grid=[None] for a method with nothing to choose)",
         _benchmark_empty_grid),
    Case("benchmark-rejected-value", "a grid value the method's builder rejects (found before any run)", "ValueError",
         "method 'Mine' rejects its grid value -1.0: ValueError: sigma (the denoising noise scale) must be >= 0, got "
         "-1.0; pick a noise standard deviation such as sigma=0.3 (0 = no noise)", _benchmark_rejected_value),
    Case("benchmark-other-settings", "a benchmark `out_dir` that holds runs of another budget, model or data",
         "ValueError", "…/bench holds runs of another benchmark (different budget); use another out_dir, or delete "
         "that one to rerun", _benchmark_other_settings),
]
