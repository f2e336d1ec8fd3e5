"""experiments/carry_state.py: a plan worker's --carry commits exactly the resume state of its unfinished
tasks (force-added past .gitignore), untracks what finished tasks left, and refuses a tree with other
staged work; a clone of the commit holds the files a new machine's worker resumes from."""
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "experiments"))

from carry_state import carry, state_paths  # noqa: E402
from plan_worker import PlanWorker, run_main, write_json  # noqa: E402


class Toy(PlanWorker):
    """train-a and train-b train (a checkpoint, best weights, train.json when training ends); eval-c
    evaluates in batches (partial/eval-c/); a task is done when OUT/NAME.json exists."""

    plan = [{"name": "train-a", "kind": "x"}, {"name": "train-b", "kind": "x"}, {"name": "eval-c", "kind": "x"}]
    scales = {"full": {}, "tiny": {}}

    def done(self, t):
        return (self.out / f"{t['name']}.json").exists()

    def report(self):
        pass


def git(repo, *args):
    return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True).stdout


@pytest.fixture
def repo(tmp_path):
    git(tmp_path, "init", "-q")
    git(tmp_path, "config", "user.email", "tests@pyro-air")
    git(tmp_path, "config", "user.name", "tests")
    (tmp_path / ".gitignore").write_text("*.pt\n")
    (tmp_path / "README").write_text("x\n")
    git(tmp_path, "add", ".")
    git(tmp_path, "commit", "-q", "-m", "start")
    return tmp_path


def write(path, data=b"w"):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def tracked(repo):
    return sorted(git(repo, "ls-files").split())


def test_carry_commits_the_unfinished_tasks_resume_files_only(repo):
    out = repo / "results"
    worker = Toy(out)
    write(out / "runs/train-a/checkpoint.pt", b"ckpt-a")           # training: checkpoint and best weights
    write(out / "runs/train-a/best.pt", b"best-a")
    write(out / "runs/train-b/checkpoint.pt", b"ckpt-b")           # trained, being evaluated: best.pt only
    write(out / "runs/train-b/best.pt", b"best-b")
    write_json(out / "runs/train-b/train.json", {"done": True})
    write(out / "partial/train-b/test/batch.pt", b"half")
    write(out / "partial/eval-c/valid.pt", b"part")
    write(out / "partial/eval-c/.valid.pt.123.tmp", b"in flight")  # an atomic write in flight is never taken
    write(repo / "other.txt", b"unrelated, unstaged")

    done = carry(worker)
    assert done["commit"] == git(repo, "rev-parse", "HEAD").strip()
    assert tracked(repo) == [".gitignore", "README", "results/partial/eval-c/valid.pt",
                             "results/partial/train-b/test/batch.pt", "results/runs/train-a/best.pt",
                             "results/runs/train-a/checkpoint.pt", "results/runs/train-b/best.pt"]
    assert done["bytes"] == sum(len(b) for b in (b"ckpt-a", b"best-a", b"best-b", b"half", b"part"))
    assert "other.txt" in git(repo, "status", "--porcelain")       # the commit took nothing else
    assert "train-a, train-b, eval-c" not in git(repo, "log", "-1", "--format=%s")
    assert "eval-c, train-a, train-b" in git(repo, "log", "-1", "--format=%s")

    # a clone (the next machine) checks the files out where the worker resumes from them
    clone = repo.parent / "clone"
    subprocess.run(["git", "clone", "-q", str(repo), str(clone)], check=True)
    assert (clone / "results/runs/train-a/checkpoint.pt").read_bytes() == b"ckpt-a"

    # train-a and eval-c finish: their files leave the index (not the disk); train-b's newer best.pt is carried
    write_json(out / "train-a.json", {})
    write_json(out / "eval-c.json", {})
    write(out / "runs/train-b/best.pt", b"best-b2")
    again = carry(worker)
    assert sorted(Path(p).name for p in again["dropped"]) == ["best.pt", "checkpoint.pt", "valid.pt"]
    assert tracked(repo) == [".gitignore", "README", "results/partial/train-b/test/batch.pt",
                             "results/runs/train-b/best.pt"]
    assert git(repo, "show", "HEAD:results/runs/train-b/best.pt") == "best-b2"
    assert (out / "runs/train-a/checkpoint.pt").exists()

    # nothing changed: nothing to commit
    assert carry(worker)["commit"] is None


def test_only_carries_those_tasks_and_leaves_the_others_tracked_state_alone(repo):
    out = repo / "results"
    worker = Toy(out)
    write(out / "runs/train-a/checkpoint.pt")
    write(out / "runs/train-b/checkpoint.pt")
    carry(worker)
    write(out / "runs/train-a/checkpoint.pt", b"newer")
    write(out / "runs/train-b/checkpoint.pt", b"newer")
    carried, dropped = state_paths(worker, only=["train-a"])
    assert [p.relative_to(out).as_posix() for p in carried] == ["runs/train-a/checkpoint.pt"] and dropped == []
    carry(worker, only=["train-a"])
    assert git(repo, "show", "HEAD:results/runs/train-a/checkpoint.pt") == "newer"
    assert git(repo, "show", "HEAD:results/runs/train-b/checkpoint.pt") == "w"   # as it was carried before


def test_other_staged_work_is_refused_and_the_index_left_as_it_was(repo):
    out = repo / "results"
    write(out / "runs/train-a/checkpoint.pt")
    write(repo / "staged.txt", b"mine")
    git(repo, "add", "staged.txt")
    with pytest.raises(ValueError, match="commit or unstage them first"):
        carry(Toy(out))
    assert git(repo, "diff", "--cached", "--name-only").split() == ["staged.txt"]


def test_the_command_line_carries_and_says_so_in_one_line(repo, capsys):
    out = repo / "results"
    write(out / "runs/train-a/checkpoint.pt", b"12345")
    assert run_main(Toy, ["--carry", "--out", str(out)]) == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert line.startswith("carried 1 file(s)") and "untracked 0" in line and "commit " in line
    write(repo / "staged.txt", b"mine")
    git(repo, "add", "staged.txt")
    assert run_main(Toy, ["--carry", "--out", str(out)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("--carry:") and "unstage" in err[0]
