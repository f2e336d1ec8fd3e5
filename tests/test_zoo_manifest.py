"""The manifest is validated when it is read (pyro_air/zoo/manifest.py): every malformed entry - a
missing or wrong-typed key, a name that is not a plain file name, a name listed twice, a file outside
the zoo once symbolic links are resolved, a format version of the wrong type - is one line that says
what to do, before anything is loaded or written; a command never writes outside its output folder."""
import contextlib
import io
import json
import shutil
from pathlib import Path

import pytest
import torch

from pyro_air import zoo
from pyro_air.cli import main
from pyro_air.runs import build_run, vae_spec
from pyro_air.train import checkpoints as ckpt_io
from pyro_air.zoo import manifest
from tests.signal_worker import write_tiny_amat

NAME = "tiny"


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    base = tmp_path_factory.mktemp("manifest")
    (base / "data").mkdir()
    data_dir = write_tiny_amat(base / "data")
    spec = vae_spec(z_dim=2, hidden=(8,), dataset="mnist-amat")
    spec["data"]["data_dir"] = str(data_dir)
    model, guide, _ = build_run(spec, seed=0)
    run = ckpt_io.atomic_save({"format_version": ckpt_io.FORMAT_VERSION, "spec": spec, "epoch": 1,
                               "model_state": model.state_dict(), "guide_state": guide.state_dict()}, base / "best.pt")
    zoo.export(run, NAME, description="d", command="c", budget={}, test_numbers={}, check_points=4, check_samples=5,
               seed=0, root=base / "zoo")
    return base / "zoo", data_dir


@pytest.fixture
def root(built, tmp_path, monkeypatch):
    """A copy of the zoo a test may edit, as $PYRO_AIR_ZOO; the working directory is tmp_path/work/here."""
    root = tmp_path / "zoo"
    shutil.copytree(built[0], root)
    monkeypatch.setenv("PYRO_AIR_ZOO", str(root))
    monkeypatch.setenv("PYRO_AIR_DATA", str(built[1]))
    (tmp_path / "work" / "here").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "work" / "here")
    return root


def edit(root, change):
    doc = json.loads((root / "manifest.json").read_text())
    change(doc)
    (root / "manifest.json").write_text(json.dumps(doc))


def refusal(*argv):
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main([str(a) for a in argv])
    return code, err.getvalue()


def files_under(path):
    return sorted(str(p.relative_to(path)) for p in Path(path).rglob("*"))


def without(key):
    return lambda doc: doc["models"][0].pop(key)


def setting(key, value):
    return lambda doc: doc["models"][0].__setitem__(key, value)


CASES = {
    "version-text": (lambda doc: doc.__setitem__("format_version", "1"),
                     r'"format_version" must be an integer >= 1, got \'1\''),
    "no-file": (without("file"), 'the entry \'tiny\' has no "file" \\(its weight file'),
    "no-spec": (without("spec"), 'the entry \'tiny\' has no "spec"'),
    "no-check": (without("check"), 'the entry \'tiny\' has no "check"'),
    "file-int": (setting("file", 5), 'has a "file" of type int, not str'),
    "size-bool": (setting("size_bytes", True), 'has a "size_bytes" of type bool, not int'),
    "escaping-name": (setting("name", "../../../../../escaped"),
                      "the entry '../../../../../escaped' has a name that is not a plain file name"),
    "duplicate": (lambda doc: doc["models"].append(dict(doc["models"][0])), "the entry 'tiny' is listed twice"),
    "entry-not-object": (lambda doc: doc["models"].append(3), "the entry number 2 is a int, not an object"),
    "check-text": (lambda doc: doc["models"][0]["check"].__setitem__("points", "4"),
                   'a check without a numeric "points"'),
    "spec-no-model": (lambda doc: doc["models"][0]["spec"].pop("model"), 'a spec without a "model" name'),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_malformed_entry_is_one_line_with_the_remedy(root, case):
    change, pattern = CASES[case]
    edit(root, change)
    with pytest.raises(zoo.ZooError, match=pattern) as info:
        zoo.names()
    message = str(info.value)
    assert "\n" not in message and message.endswith("unset $PYRO_AIR_ZOO to use the models shipped with pyro-air")
    code, stderr = refusal("zoo", "list")
    assert code == 2 and stderr.count("\n") == 1 and stderr.startswith("pyro-air: error: ")


def test_an_escaping_name_writes_nothing_anywhere(root, tmp_path):
    """Issue 34: `diagnose "zoo:../../../../../escaped"` wrote four files above the working directory."""
    edit(root, setting("name", "../../../../../escaped"))
    before = files_under(tmp_path)
    code, stderr = refusal("diagnose", "zoo:../../../../../escaped", "--num-samples", "30", "--max-points", "3",
                           "--no-progress")
    assert code == 2 and "a zoo model's name is also its file name" in stderr and stderr.count("\n") == 1
    assert files_under(tmp_path) == before


def test_a_weight_file_linked_out_of_the_zoo_is_refused_even_with_matching_bytes(root, tmp_path):
    outside = tmp_path / "outside.pt"
    digest = zoo.entry(NAME)["sha256"]
    shutil.move(root / "weights" / f"{NAME}.pt", outside)
    (root / "weights" / f"{NAME}.pt").symlink_to(outside)
    assert manifest.sha256(root / "weights" / f"{NAME}.pt") == digest  # the bytes are the listed ones
    with pytest.raises(zoo.ZooError, match=r"lists the file 'weights/tiny.pt', outside the zoo directory \(symbolic"):
        zoo.load(NAME)


def test_a_link_that_stays_inside_the_zoo_loads(root):
    (root / "weights" / f"{NAME}.pt").rename(root / "weights" / "real.pt")
    (root / "weights" / f"{NAME}.pt").symlink_to(root / "weights" / "real.pt")
    model, _ = zoo.load(NAME)
    assert model.z_dim == 2


def test_an_edited_hidden_size_is_one_line(root):
    edit(root, lambda doc: doc["models"][0]["spec"]["model"]["cfg"].__setitem__("hidden", [9]))
    pattern = (r"the weights of 'tiny' \(.*\) do not fit the modules its manifest spec builds \(RuntimeError: "
               r"Error\(s\) in loading state_dict .*size mismatch")
    with pytest.raises(zoo.ZooError, match=pattern) as info:
        zoo.load(NAME)
    assert "\n" not in str(info.value) and "the entry's spec was edited" in str(info.value)


def test_an_upper_case_prefix_is_refused_not_read_as_a_path(root):
    with pytest.raises(ValueError, match=r"'ZOO:tiny': a zoo model is named with a lower-case prefix, zoo:NAME \(e.g. "
                                         r"zoo:tiny\)"):
        zoo.zoo_name("ZOO:tiny")
    assert zoo.zoo_name("zoo:tiny") == "tiny" and zoo.zoo_name("runs/x") is None
    code, stderr = refusal("evaluate", "ZOO:tiny", "--num-samples", "5")
    assert code == 2 and "lower-case prefix" in stderr


def test_diagnose_refuses_its_options_before_creating_the_output_folder(root, tmp_path):
    before = files_under(tmp_path)
    for options in (["--num-samples", "3"], ["--max-points", "0"]):
        code, stderr = refusal("diagnose", f"zoo:{NAME}", *options, "--no-progress")
        assert code == 2 and stderr.count("\n") == 1, stderr
    assert files_under(tmp_path) == before and not Path("runs").exists()


def test_diagnose_refuses_an_output_file_linked_elsewhere(root, tmp_path):
    out = Path("runs") / f"zoo-{NAME}"
    out.mkdir(parents=True)
    (out / "khat.json").symlink_to(tmp_path / "victim.json")
    code, stderr = refusal("diagnose", f"zoo:{NAME}", "--num-samples", "30", "--max-points", "3", "--no-progress")
    assert code == 2 and "khat.json is a symbolic link" in stderr and stderr.count("\n") == 1
    assert not (tmp_path / "victim.json").exists() and files_under(out) == ["khat.json"]


def test_diagnose_refuses_a_runs_folder_linked_elsewhere(root, tmp_path):
    (tmp_path / "elsewhere").mkdir()
    Path("runs").mkdir()
    (Path("runs") / f"zoo-{NAME}").symlink_to(tmp_path / "elsewhere")
    code, stderr = refusal("diagnose", f"zoo:{NAME}", "--num-samples", "30", "--max-points", "3", "--no-progress")
    assert code == 2 and "outside runs; pyro-air writes a command's outputs only inside their folder" in stderr
    assert files_under(tmp_path / "elsewhere") == []


def test_diagnose_of_a_valid_zoo_still_writes_its_files(root):
    code, stderr = refusal("diagnose", f"zoo:{NAME}", "--num-samples", "30", "--max-points", "3", "--no-progress")
    assert code == 0, stderr
    assert {"khat.txt", "khat.json", "khat.png"} <= set(files_under(Path("runs") / f"zoo-{NAME}"))


class Payload:
    def __reduce__(self):
        return (print, ("a pickle payload ran",))


def test_a_weight_file_holding_code_with_a_matching_hash_is_one_line_naming_it(root, capsys):
    import torch

    path = root / "weights" / f"{NAME}.pt"
    torch.save({"format_version": 2, "model_state": Payload(), "guide_state": {}}, path)
    edit(root, lambda doc: doc["models"][0].update(sha256=manifest.sha256(path), size_bytes=path.stat().st_size))
    with pytest.raises(RuntimeError) as info:
        zoo.load(NAME)
    assert str(info.value).startswith(f"{path} is not a readable checkpoint: it holds a reference to print")
    assert "\n" not in str(info.value) and "a pickle payload ran" not in capsys.readouterr().out


def test_diagnose_refuses_draws_larger_than_memory_before_loading(root, tmp_path):
    before = files_under(tmp_path)
    code, stderr = refusal("diagnose", f"zoo:{NAME}", "--max-points", "1000000", "--num-samples", "10000000")
    assert code == 2 and stderr.count("\n") == 1, stderr
    assert "--max-points 1000000 x --num-samples 10000000 draws need about 1.6e+05 GB" in stderr
    assert files_under(tmp_path) == before


def test_the_bytes_verified_are_the_bytes_loaded(root, monkeypatch):
    """A file swapped after its hash was checked is not what gets loaded: the file is read once."""
    from pyro_air.zoo import loading

    expected = {k: v.clone() for k, v in zoo.load(NAME)[0].state_dict().items()}
    real = manifest.verified_weight_bytes

    def then_swapped(e, root=None):
        path, data = real(e, root)
        path.write_bytes(b"swapped after the check")  # an attacker's timing, made certain
        return path, data

    monkeypatch.setattr(loading.manifest, "verified_weight_bytes", then_swapped)
    model, _ = zoo.load(NAME)
    assert all(torch.equal(model.state_dict()[k], v) for k, v in expected.items())
