"""Export is atomic as a whole (pyro_air/zoo/exporting.py): a re-export killed at any rename - by
``os._exit`` in a subprocess at a chosen call, deterministically, no timing - leaves a zoo that loads
the old entry with its old weights or the new entry with its new weights, never a manifest naming a
missing or other file; what the kill left is never listed and is removed by the next export."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from pyro_air import zoo
from pyro_air.runs import build_run, vae_spec
from pyro_air.train import checkpoints as ckpt_io
from pyro_air.zoo import exporting, manifest
from tests.signal_worker import write_tiny_amat

ROOT = Path(__file__).resolve().parents[1]
NAME = "tiny"
SEED = 5


def export(run, root, name=NAME):
    return zoo.export(run, name, description="d", command="c", budget={}, test_numbers={}, check_points=5,
                      check_samples=10, seed=SEED, root=root)


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    """(base, data_dir, old.pt, new.pt): two untrained weight sets of one spec (new = old + 0.25), and a zoo
    at base/zoo holding NAME from old.pt and "other"."""
    base = tmp_path_factory.mktemp("export")
    (base / "data").mkdir()
    data_dir = write_tiny_amat(base / "data")
    spec = vae_spec(z_dim=2, hidden=(8,), dataset="mnist-amat")
    spec["data"]["data_dir"] = str(data_dir)
    model, guide, _ = build_run(spec, seed=SEED)
    files = []
    for shift in (0.0, 0.25):
        state = {"format_version": ckpt_io.FORMAT_VERSION, "spec": spec, "epoch": 1,
                 "model_state": {k: v + shift for k, v in model.state_dict().items()},
                 "guide_state": {k: v + shift for k, v in guide.state_dict().items()}}
        files.append(ckpt_io.atomic_save(state, base / f"{'new' if shift else 'old'}.pt"))
    export(files[0], base / "zoo")
    export(files[0], base / "zoo", name="other")
    return base, data_dir, files[0], files[1]


def weights_of(root):
    model, guide = zoo.load(NAME, root=root)
    return {**{f"m.{k}": v for k, v in model.state_dict().items()},
            **{f"g.{k}": v for k, v in guide.state_dict().items()}}


def stored(path):
    state = ckpt_io.load(path)
    return {**{f"m.{k}": v for k, v in state["model_state"].items()},
            **{f"g.{k}": v for k, v in state["guide_state"].items()}}


def same(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def leftovers(root):
    """Temporary files anywhere in the zoo, and weight files the manifest does not list."""
    listed = {e["file"] for e in manifest.read_manifest(root)["models"]}
    temps = sorted(p.name for p in root.rglob(".*.tmp"))
    unlisted = sorted(f"weights/{p.name}" for p in (root / "weights").iterdir() if f"weights/{p.name}" not in listed)
    return temps, unlisted


def test_a_re_export_writes_a_new_file_then_the_manifest_then_removes_the_old(sources, tmp_path):
    base, _, old, new = sources
    root = tmp_path / "zoo"
    shutil.copytree(base / "zoo", root)
    assert zoo.entry(NAME, root)["file"] == "weights/tiny.pt"
    entry = export(new, root)
    assert entry["file"] == "weights/tiny+1.pt" and not (root / "weights" / "tiny.pt").exists()
    assert same(weights_of(root), stored(new)) and leftovers(root) == ([], [])
    assert export(old, root)["file"] == "weights/tiny.pt"  # the two names alternate
    assert same(weights_of(root), stored(old)) and leftovers(root) == ([], [])
    assert zoo.names(root) == ["other", NAME]


# (N-th os.replace, before/after): 1 = the new weight file's rename, 2 = the manifest's; (0, -) = after the
# manifest, in the removal of the old file. Which entry the zoo must then list, and what the kill leaves.
KILLS = [(1, "before", "old", ".tiny+1.pt"), (1, "after", "old", "tiny+1.pt"),
         (2, "before", "old", ".manifest.json"), (2, "after", "new", "tiny.pt"), (0, "-", "new", "tiny.pt")]


@pytest.mark.parametrize("target,when,expected,left", KILLS, ids=[f"{t}-{w}" for t, w, _, _ in KILLS])
def test_an_export_killed_at_any_step_leaves_the_old_or_the_new_entry_whole(sources, tmp_path, target, when,
                                                                              expected, left):
    base, data_dir, old, new = sources
    root = tmp_path / "zoo"
    shutil.copytree(base / "zoo", root)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYRO_AIR_DATA": str(data_dir), "OMP_NUM_THREADS": "1"}
    env.pop("PYRO_AIR_ZOO", None)
    proc = subprocess.run([sys.executable, "-m", "tests.zoo_export_worker", str(root), str(new), NAME, str(SEED),
                           str(target), when], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 137, proc.stderr
    # the zoo loads, with the old entry and its file or the new entry and its file, and "other" untouched
    assert same(weights_of(root), stored(old if expected == "old" else new))
    assert zoo.names(root) == ["other", NAME] and zoo.load("other", root=root)
    temps, unlisted = leftovers(root)
    assert any(name.startswith(left) for name in temps + [u.split("/")[1] for u in unlisted]), (temps, unlisted)
    # the next export (of either weights) finds the zoo usable and leaves nothing behind
    export(new, root)
    assert same(weights_of(root), stored(new)) and leftovers(root) == ([], [])


def test_the_new_weight_file_is_never_the_listed_one():
    first = {"file": "weights/a.pt"}
    assert exporting.new_weight_file("a", None) == "weights/a.pt"
    assert exporting.new_weight_file("a", first) == "weights/a+1.pt"
    assert exporting.new_weight_file("a", {"file": "weights/a+1.pt"}) == "weights/a.pt"
    assert not manifest.NAME_PATTERN.fullmatch("a+1")  # no model's name, so no other model's file


@pytest.mark.parametrize("target,when", [(1, "after"), (2, "before")])
def test_a_first_export_killed_before_its_manifest_lists_nothing_new(sources, tmp_path, target, when):
    base, data_dir, old, new = sources
    root = tmp_path / "zoo"
    shutil.copytree(base / "zoo", root)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYRO_AIR_DATA": str(data_dir), "OMP_NUM_THREADS": "1"}
    env.pop("PYRO_AIR_ZOO", None)
    proc = subprocess.run([sys.executable, "-m", "tests.zoo_export_worker", str(root), str(new), "fresh", str(SEED),
                           str(target), when], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 137, proc.stderr
    assert zoo.names(root) == ["other", NAME] and same(weights_of(root), stored(old))
    assert leftovers(root) != ([], [])  # the kill left something, never listed
    export(new, root, name="fresh")
    assert zoo.names(root) == ["fresh", "other", NAME] and leftovers(root) == ([], [])


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full (Linux)")
def test_a_full_disk_during_an_export_is_one_line_and_changes_nothing(sources, tmp_path, monkeypatch):
    """The kernel's ENOSPC: every temporary file is opened on /dev/full."""
    import tempfile

    from pyro_air.train.run_dir import RunDirError

    base, _, old, new = sources
    root = tmp_path / "zoo"
    shutil.copytree(base / "zoo", root)
    before = {p.name: p.read_bytes() for p in root.rglob("*") if p.is_file()}
    real = tempfile.mkstemp

    def full(*args, **kwargs):
        fd, name = real(*args, **kwargs)
        os.close(fd)
        os.unlink(name)
        return os.open("/dev/full", os.O_WRONLY), name

    monkeypatch.setattr(tempfile, "mkstemp", full)
    with pytest.raises(RunDirError) as info:
        export(new, root)
    assert str(info.value).startswith(f"could not write the zoo weight file ({root / 'weights' / 'tiny+1.pt'}: No "
                                      "space left on device)")
    assert str(info.value).endswith("The zoo is unchanged (it lists what it listed before); export again once this "
                                    "is fixed.") and "\n" not in str(info.value)
    monkeypatch.undo()
    assert {p.name: p.read_bytes() for p in root.rglob("*") if p.is_file()} == before
    assert same(weights_of(root), stored(old))
