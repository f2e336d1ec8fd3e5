"""Carry a plan worker's unfinished tasks to a new machine through the branch itself.

A new machine starts from the landed branch alone (experiments/README.md, "The state branch lives in
the local repository only"), so the resume state of a task still running when a session ends is lost
unless it is committed. ``carry(worker)`` commits exactly that state, and nothing else:

- for each task of the plan that is not done, its resume files: a run still training keeps
  ``runs/NAME/checkpoint.pt`` and ``best.pt`` (``pyro_air.train.fit`` resumes from them, to the numbers an
  uninterrupted run gives); a run that finished training (``train.json``) but not its evaluation keeps
  ``best.pt`` only; an evaluation cut short keeps its ``partial/NAME/`` files
  (``pyro_air.evaluate.resume``);
- state files of the results folder that are tracked but belong to a finished task leave the index
  (``git rm --cached``: they stay on disk, and a clone no longer checks them out).

The files are force-added (``*.pt`` is git-ignored) and committed in one commit of their own; a tree
with other staged changes is refused, so the commit never takes unrelated work with it. Each carry
adds the changed files to the history (a checkpoint is 2-40 MB), so it runs once, as a session ends
(``--carry`` of the worker's command line; ``--only`` limits it to some tasks).
"""
from __future__ import annotations

import subprocess
from pathlib import Path

RESUME_FILES = ("checkpoint.pt", "best.pt")


def _git(root: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"git {' '.join(args[:2])} failed: {done.stderr.strip() or done.stdout.strip()}")
    return done.stdout


def task_state_files(worker, t: dict) -> list[Path]:
    """The files that let task ``t`` continue where it stopped (module docstring), those on disk."""
    run_dir = worker.runs / t["name"]
    names = ("best.pt",) if (run_dir / "train.json").exists() else RESUME_FILES
    files = [run_dir / n for n in names if (run_dir / n).is_file()]
    partial = worker.partial(t["name"])
    if partial.is_dir():
        files += sorted(p for p in partial.rglob("*") if p.is_file() and not p.name.startswith("."))
    return files


def state_paths(worker, only=None) -> tuple[list[Path], list[Path]]:
    """(carry, drop): the resume files of the unfinished tasks (of ``only`` where given), and the tracked
    state files of the results folder that no unfinished task needs."""
    pending = {t["name"] for t in worker.plan if not worker.done(t)}  # done() reads the results: once a task
    carry = []
    for t in worker.plan:
        if t["name"] in pending and not (only and t["name"] not in only):
            carry += task_state_files(worker, t)
    root = repo_root(worker.out)
    out = worker.out.resolve()
    tracked = _git(root, "ls-files", "-z", "--", str(out / "runs" / "*.pt"), str(out / "partial")).split("\0")
    keep = {p.resolve() for p in carry}
    drop = []
    for name in filter(None, tracked):
        path = (root / name).resolve()
        task = _task_of(path, out)
        if path in keep or (only and task not in only and task in pending):
            continue  # carried now, or another unfinished task's state that this call leaves alone
        drop.append(path)
    return carry, drop


def _task_of(path: Path, out: Path) -> str:
    """The task a state file belongs to: runs/NAME/... or partial/NAME/..."""
    parts = path.relative_to(out).parts
    return parts[1] if len(parts) > 2 else ""


def repo_root(path: Path) -> Path:
    return Path(_git(Path(path), "rev-parse", "--show-toplevel").strip())


def carry(worker, only=None, commit: bool = True) -> dict:
    """Stage (and with ``commit``, commit) the unfinished tasks' resume state and untrack what finished
    tasks left tracked; returns {"carried": [paths], "dropped": [paths], "bytes": size carried,
    "commit": hash or None}. Raises ValueError where other changes are staged already."""
    root = repo_root(worker.out)
    staged = [p for p in _git(root, "diff", "--cached", "--name-only", "-z").split("\0") if p]
    if staged and commit:
        raise ValueError(f"{len(staged)} change(s) already staged ({staged[0]}, ...): commit or unstage them first, "
                         "so that the carry commit holds only the resume state")
    carried, dropped = state_paths(worker, only)
    if carried:
        _git(root, "add", "-f", "--", *map(str, carried))
    if dropped:
        _git(root, "rm", "-q", "--cached", "--", *map(str, dropped))
    size = sum(p.stat().st_size for p in carried)
    changed = [p for p in _git(root, "diff", "--cached", "--name-only", "-z").split("\0") if p]
    sha = None
    if commit and changed:
        tasks = sorted({_task_of(p.resolve(), worker.out.resolve()) for p in carried})
        message = (f"carry resume state of {worker.out.name}: {', '.join(tasks) or 'none'} "
                   f"({size / 1e6:.1f} MB; {len(dropped)} finished file(s) untracked)")
        _git(root, "commit", "-q", "-m", message)
        sha = _git(root, "rev-parse", "HEAD").strip()
    return {"carried": [str(p) for p in carried], "dropped": [str(p) for p in dropped], "bytes": size, "commit": sha}
