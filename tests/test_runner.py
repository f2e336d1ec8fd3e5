"""pyro_air/compare/runner.py: the encoder benchmark's protocol on a tiny budget and synthetic data
(seconds): selection on validation, paired differences (exactly 0 for the baseline against itself),
a user's registered method, and clear errors for bad input."""
import json

import pytest
import torch

from pyro_air import compare as benchmark
from pyro_air.compare import Benchmark, Components, Method, paired_difference
from pyro_air.guides import GaussianEncoder

X_DIM = 64  # 8 x 8 "images": the consistency method's shifts need a square


def splits(seed=0):
    g = torch.Generator().manual_seed(seed)
    probs = torch.rand(1, X_DIM, generator=g) * 0.6 + 0.2
    return tuple(torch.bernoulli(probs.expand(n, X_DIM), generator=g) for n in (100, 40, 30))


def tiny(**overrides):
    cfg = {"epochs": 1, "hidden": [16], "z_dim": 2, "valid_num_samples": 3, "test_num_samples": 8, "elbo_samples": 3,
           "amortization": {"points": 4, "num_steps": 2, "num_particles": 2}, "seeds": [0, 1]}
    cfg.update(overrides)
    return benchmark.budget("tiny", **cfg)


class InputDropoutEncoder(GaussianEncoder):
    """The Gaussian encoder that sees x * m / (1 - p), m ~ Bernoulli(1 - p), while training; p = 0: itself."""

    def __init__(self, p, **enc):
        super().__init__(**enc)
        if not 0 <= p < 1:
            raise ValueError(f"p must be in [0, 1), got {p}")
        self.p = p

    def encoder_input(self, x):
        if self.training and self.p > 0:
            return x * torch.bernoulli(torch.full_like(x, 1 - self.p)) / (1 - self.p)
        return x


@pytest.fixture(scope="module")
def two_methods(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    lines = []
    bench = Benchmark(["VAE", "DVAE"], budget=tiny(), out_dir=out, data=splits(), log=lines.append)
    return bench, bench.run(), lines


def test_the_baseline_against_itself_is_exactly_zero(two_methods):
    _, report, _ = two_methods
    for key in benchmark.PAIRED:
        images = 4 if key == "d_amort" else 30  # the amortization gap's points, every test image
        assert report.summary["VAE"][key] == {"mean": 0.0, "se": 0.0, "seeds": 2, "se_images": 0.0, "images": images}
    assert "| VAE | — | 2 | +0.00 ± 0.00 |" in report.paired_table()


def test_paired_differences_are_those_of_the_stored_test_tensors(two_methods):
    bench, report, _ = two_methods
    e = report.summary["DVAE"]
    per_seed = []
    for seed in (0, 1):
        t = torch.load(bench.run_dir("DVAE", e["param"], seed) / "test.pt")
        b = torch.load(bench.run_dir("VAE", None, seed) / "test.pt")
        per_seed.append((b["log_px"].double() - t["log_px"].double()).mean().item())
    assert e["d_nll"]["mean"] == pytest.approx(sum(per_seed) / 2, rel=1e-12)
    assert e["d_nll"]["se"] == pytest.approx(abs(per_seed[0] - per_seed[1]) / 2, rel=1e-9)
    assert e["seeds"] == [0, 1] and e["d_nll"]["seeds"] == 2
    assert e["d_amort"]["images"] == 4  # the amortization gap's points


def test_selection_picks_the_best_validation_value(two_methods):
    bench, report, lines = two_methods
    grid = report.summary["DVAE"]["grid"]
    assert [g["param"] for g in grid] == [0.25, 0.5]
    assert report.summary["DVAE"]["param"] == max(grid, key=lambda g: g["best_valid"])["param"]
    # seed 1 ran only the chosen value; the log names each run once
    assert sorted(p.name for p in (bench.out_dir / "runs" / "DVAE").glob("*/seed1")) == ["seed1"]
    assert sum(line.startswith("DVAE param=") for line in lines) == 3


def test_tables_and_json(two_methods):
    _, report, _ = two_methods
    table = report.table().splitlines()
    assert table[0].startswith("| method | chosen | seeds | -log p(x) | Δ(-log p) vs VAE |")
    assert table[2].startswith("| VAE | — | 2 |") and "| — |" in table[2]  # the baseline's own Δ: "—"
    chosen = report.summary["DVAE"]["param"]
    assert table[3].startswith(f"| DVAE | σ={chosen:g} | 2 |")
    assert "| s.e. over |" in report.paired_table() and "| seeds |" in report.paired_table()
    doc = json.loads(json.dumps(report.to_json()))
    assert doc["grids"] == {"VAE": [None], "DVAE": [0.25, 0.5]} and doc["budget"]["epochs"] == 1
    assert "| DVAE | σ=" in report.grid_table()


def test_a_rerun_reads_the_runs_on_disk(two_methods):
    bench, report, _ = two_methods
    lines = []
    again = Benchmark(["VAE", "DVAE"], budget=tiny(), out_dir=bench.out_dir, data=splits(), log=lines.append).run()
    assert again.summary == report.summary
    assert all(line.startswith("selected") for line in lines)


def test_a_changed_budget_is_refused_in_the_same_directory(two_methods):
    bench, _, _ = two_methods
    other = Benchmark(["VAE"], budget=tiny(epochs=2), out_dir=bench.out_dir, data=splits(), log=None)
    with pytest.raises(ValueError, match="holds runs of another benchmark .*budget"):
        other.run_one("VAE", None, 5)
    with pytest.raises(ValueError, match="different data"):
        Benchmark(["VAE"], budget=tiny(), out_dir=bench.out_dir, data=splits(seed=1), log=None).run_one("VAE", None, 5)


def test_selection_reads_the_seed_zero_validation_bounds(tmp_path):
    """Best validation bound wins; a tie goes to the first grid value."""
    bench = Benchmark(["VAE"], budget=tiny(), out_dir=tmp_path, data=splits(), log=None)

    @bench.method("Fake", grid=[1, 2, 3, 4])
    def fake(param, setup):
        return GaussianEncoder(**setup.encoder)

    for param, valid in zip(fake.grid, [-5.0, -3.0, -4.0, -3.0]):
        d = bench.run_dir("Fake", param, 0)
        d.mkdir(parents=True)
        (d / "result.json").write_text(json.dumps({"param": param, "best_valid": valid}))
    assert bench.selected("Fake") == 2
    assert bench.selected("VAE") is None  # nothing to choose: no run needed


def test_a_registered_method_runs_and_its_neutral_value_is_the_plain_encoder(tmp_path):
    bench = Benchmark("VAE", budget=tiny(seeds=[0]), out_dir=tmp_path, data=splits(), log=None)

    @bench.method("InputDropout", grid=[0.0, 0.5], param_name="p")
    def input_dropout(p, setup):
        guide = InputDropoutEncoder(p, **setup.encoder)
        return Components(guide, extra_record=lambda: {"dropout": guide.p})

    assert isinstance(input_dropout, Method) and bench.methods["InputDropout"] is input_dropout
    report = bench.run()
    e = report.summary["InputDropout"]
    assert e["param"] in (0.0, 0.5) and e["dropout"] == e["param"] and e["d_nll"]["seeds"] == 1
    assert f"| InputDropout | p={e['param']:g} | 1 |" in report.table()
    # p = 0 is the VAE's run bit for bit: same decoder, data, seed, and the same encoder weights
    plain = torch.load(bench.run_dir("VAE", None, 0) / "test.pt")
    neutral = torch.load(bench.run_dir("InputDropout", 0.0, 0) / "test.pt")
    assert all(torch.equal(plain[k], neutral[k]) for k in plain)
    dropped = torch.load(bench.run_dir("InputDropout", 0.5, 0) / "test.pt")
    assert not torch.equal(plain["log_px"], dropped["log_px"])


def test_every_built_in_method_builds_at_every_grid_value(tmp_path):
    bench = Benchmark(list(benchmark.ENCODER_FAMILY), budget=tiny(), out_dir=tmp_path, data=splits(), log=None)
    bench.check()
    assert list(bench.methods) == ["VAE", "DVAE", "WNI", "DVAE+WNI", "CR", "SN", "SA-full", "SA-stop", "Lagging"]
    assert bench.run_dir("DVAE+WNI", 3.0, 1).relative_to(tmp_path).as_posix() == "runs/DVAE_WNI/3/seed1"
    assert not (tmp_path / "runs").exists()  # checking trains nothing


def test_paired_difference_against_hand_computed_numbers():
    values = {0: torch.tensor([1.0, 2.0]), 1: torch.tensor([3.0, 5.0]), 2: torch.tensor([9.0, 9.0])}
    base = {0: torch.tensor([0.0, 0.0]), 1: torch.tensor([1.0, 1.0])}  # seed 2 has no pair: left out
    d = paired_difference(values, base)
    # per seed: 1.5 and 3.0; per image (mean over seeds): 1.5 and 3.0
    assert d == {"mean": 2.25, "se": pytest.approx(0.75), "seeds": 2, "se_images": pytest.approx(0.75), "images": 2}
    assert paired_difference({0: torch.ones(3)}, {0: torch.zeros(3)})["se"] is None  # one seed: no s.e. over seeds
    with pytest.raises(ValueError, match="same test images"):
        paired_difference({0: torch.ones(3)}, {0: torch.ones(4)})


def test_bad_input_gets_clear_errors(tmp_path):
    data = splits()
    with pytest.raises(ValueError, match="unknown method 'Nope'.*Benchmark.method"):
        Benchmark(["VAE", "Nope"], budget=tiny(), out_dir=tmp_path, data=data)
    with pytest.raises(ValueError, match="'Empty' has an empty grid"):
        benchmark.method("Empty", grid=[])(lambda p, s: None)
    with pytest.raises(ValueError, match="repeats a value"):
        benchmark.method("Twice", grid=[0.5, 0.5])(lambda p, s: None)
    with pytest.raises(ValueError, match="grid must be a list of values"):
        benchmark.method("Letters", grid="0.1")(lambda p, s: None)
    with pytest.raises(ValueError, match="grid values must be None, finite numbers or strings"):
        benchmark.method("Odd", grid=[[1, 2]])(lambda p, s: None)
    with pytest.raises(ValueError, match="unknown benchmark budget 'huge'"):
        benchmark.budget("huge")
    with pytest.raises(ValueError, match="unknown budget entry 'epoch'"):
        benchmark.budget("tiny", epoch=3)
    with pytest.raises(ValueError, match="epochs"):
        benchmark.budget("tiny", epochs=0)
    with pytest.raises(ValueError, match="data must be three tensors"):
        Benchmark(budget=tiny(), out_dir=tmp_path, data=data[:2])

    bench = Benchmark("VAE", budget=tiny(), out_dir=tmp_path, data=data, log=None)
    with pytest.raises(ValueError, match="'VAE' is in this benchmark already"):
        bench.method("VAE")(lambda p, s: GaussianEncoder(**s.encoder))

    @bench.method("InputDropout", grid=[0.2, 1.5], param_name="p")
    def input_dropout(p, setup):
        return InputDropoutEncoder(p, **setup.encoder)

    with pytest.raises(ValueError, match=r"method 'InputDropout' rejects its grid value 1.5: ValueError: p must be in"):
        bench.select()
    assert not (tmp_path / "runs").exists()  # found before any run

    bench.method("NotAGuide")(lambda p, s: 42)
    with pytest.raises(TypeError, match="builder of method 'NotAGuide' returned int"):
        bench.check(["NotAGuide"])
    bench.method("WrongSize")(lambda p, s: GaussianEncoder(x_dim=X_DIM, z_dim=s.z_dim + 1, hidden=[8]))
    with pytest.raises(ValueError, match="method 'WrongSize'"):
        bench.check(["WrongSize"])
    with pytest.raises(ValueError, match=r"unknown method\(s\) \['Nope'\]"):
        bench.report(["Nope"])


def test_ais_in_the_budget_adds_a_second_estimate_and_its_paired_difference(tmp_path):
    ais_cfg = {"points": 5, "num_steps": 3, "num_chains": 4}
    bench = Benchmark(["VAE", "DVAE"], budget=tiny(ais=ais_cfg), out_dir=tmp_path, data=splits(), log=None)
    report = bench.run()
    for name in ("VAE", "DVAE"):
        param = report.summary[name]["param"]
        values = []
        for seed in (0, 1):
            d = bench.run_dir(name, param, seed)
            t = torch.load(d / "test.pt", weights_only=True)
            record = json.loads((d / "result.json").read_text())
            assert t["log_px_ais"].shape == (5,) and torch.isfinite(t["log_px_ais"]).all()
            assert record["nll_ais"] == pytest.approx(-t["log_px_ais"].mean().item())
            assert record["nll_iwae_on_ais_points"] == pytest.approx(-t["log_px"][:5].mean().item())
            values.append(record["nll_ais"])
        assert report.summary[name]["nll_ais"]["mean"] == pytest.approx(sum(values) / 2)
        assert report.summary[name]["ais_points"] == 5
    assert report.summary["VAE"]["d_nll_ais"]["mean"] == 0.0
    table = report.ais_table()
    assert table.count("\n") == 3 and "| VAE | — | 2 | 5 |" in table and "| DVAE | σ=" in table
    # the same benchmark without AIS: no AIS entries, an empty AIS table
    plain = Benchmark(["VAE"], budget=tiny(), out_dir=tmp_path / "plain", data=splits(), log=None).run()
    assert "nll_ais" not in plain.summary["VAE"] and "d_nll_ais" not in plain.summary["VAE"]
    assert plain.ais_table() == ""


def test_the_overfit_budget_and_ais_entries_are_checked():
    b = benchmark.budget("overfit")
    assert (b["hidden"], b["z_dim"], b["epochs"], b["test_num_samples"]) == ([500, 500], 50, 300, 5000)
    assert benchmark.budget("overfit", ais=None)["ais"] is None
    assert benchmark.budget("overfit", ais={"points": 10})["ais"] == {"points": 10, "num_steps": 100, "num_chains": 8}
    assert benchmark.check_budget({k: v for k, v in benchmark.budget("tiny").items() if k != "ais"})["ais"] is None
    with pytest.raises(ValueError, match=r"ais.points=60 exceeds test_size=50"):
        benchmark.budget("tiny", ais={"points": 60, "num_steps": 2, "num_chains": 2})
    with pytest.raises(ValueError, match=r"budget\['ais'\] must be None \(no AIS\) or a dict with points"):
        benchmark.budget("tiny", ais={"points": 5})
    with pytest.raises(ValueError, match=r"budget\['ais'\]\['num_chains'\]"):
        benchmark.budget("tiny", ais={"points": 5, "num_steps": 2, "num_chains": 0})
    with pytest.raises(ValueError, match=r"unknown budget entries ais\.\['chains'\]"):
        benchmark.budget("overfit", ais={"chains": 4})
