"""The resumable plan worker that long experiments share: an ordered plan of tasks, each skipped when its
result is on disk, one lock per task so that several workers can share a plan, results written
atomically, and one command line.

An experiment's worker is only its tasks::

    sys.path[:0] = [str(HERE), str(HERE.parent), str(HERE.parents[1])]   # its folder, experiments/, the checkout
    from plan_worker import PlanWorker, run_main

    class Worker(PlanWorker):
        plan = PLAN        # [{"name": "base", "kind": "train", "change": "one line for --plan", ...}, ...]
        scales = SCALES    # {"full": {size: value, ...}, "tiny": {the same keys, every size shrunk}}

        def done(self, t) -> bool: ...      # is task t's result on disk?
        def report(self) -> None: ...       # table.md and results.json, from what is on disk
        def run_train(self, t) -> None: ... # one method per task kind: run_<kind>, "-" read as "_"

    if __name__ == "__main__":
        sys.exit(run_main(Worker, default_out=OUT, description=__doc__))

The command line (``run_main``): ``--worker`` runs the plan in order (a finished task is skipped; a
task another worker holds is passed over and waited for at the end), ``--only TASK ...`` limits it to
those tasks (dependencies a task waits for still run), ``--report`` rewrites the tables, ``--plan``
prints each task's state, ``--tiny`` shrinks every size (tests), ``--set KEY=JSON`` overrides one size
(tests; the results are then not comparable), ``--threads`` sets torch's threads (1 for the long
runs: one core each, a core left for others), ``--out`` the results folder.

What a worker guarantees, and how:

- **Skip if done.** ``done(t)`` reads only the result files, so a finished task is never redone and
  a half-written one (no result file yet) is redone. Result files are written atomically
  (``write_json``: a temporary file and a rename), so a kill leaves the old file or the new one.
- **Resume.** A training task trains through ``fit_resumable``: ``pyro_air.train.fit`` with a run
  directory and ``resume=True`` whenever its checkpoint exists, so a killed run continues from its
  last checkpoint (every epoch) and ends with the numbers an uninterrupted run ends with. A run
  killed before its first checkpoint starts again from scratch. An evaluation task passes
  ``partial(name)`` to the evaluators (``resume_file`` / ``resume_dir``, ``pyro_air.evaluate.resume``):
  its finished batches of images are kept there, so a killed evaluation continues from its last batch
  with the values an uninterrupted one gives; the folder is removed when the result file is written.
- **Several workers.** Each task runs under an exclusive lock (``locks/NAME.lock``, ``fcntl.flock``:
  the kernel drops it however the process dies); a worker that finds a task locked goes on with the
  next and waits for the locked one at the end; a task that needs another one's result calls
  ``wait_for(name)``: it runs that task, or waits while another worker runs it.
- **Stops cleanly.** SIGINT / SIGTERM during training: the step finishes, a checkpoint is written
  (``pyro_air.train.signals``) and the worker exits with 130 / 143; any other error is one line in the
  log and its traceback, and exit status 1. The same command resumes.

The state that lets a run continue (``*.pt``) is git-ignored; ``experiments/air/state.sh`` carries
it between sessions on one machine (a branch of the local repository), but a new machine starts
from main alone. ``--carry`` (``experiments/carry_state.py``), run as a session ends, commits the
resume files of the tasks that are not done, so the next machine continues them. Beyond that a task
never relies on another run's weights being there: it gets them through
``load(name)``, which takes a finished run's weights back from its zoo entry when it has one
(``restore_from_zoo``) and otherwise trains it again (``set_aside`` keeps the first training's
record). So finished models that matter are exported to the zoo (tracked) as soon as they are
evaluated. Results (JSON, tables) are committed as they arrive.
"""
from __future__ import annotations

import argparse
import contextlib
import fcntl
import importlib
import json
import math
import os
import shutil
import sys
import time
import traceback
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # the pyro_air of this checkout, whoever imports this module
    sys.path.insert(0, str(ROOT))

from pyro_air.support.atomic import atomic_write_text  # noqa: E402

LOCKS = "locks"


def log(msg: str) -> None:
    """One line on stdout with the time (the worker's log is its stdout)."""
    print(f"[{time.strftime('%Y-%m-%d %H:%M:%S')}] {msg}", flush=True)


def write_json(path: Path, obj) -> None:
    """``obj`` as indented JSON at ``path``, atomically (parents created)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(obj, indent=1) + "\n")


def read_json(path: Path):
    """The JSON at ``path``, or None where there is no such file."""
    path = Path(path)
    return json.loads(path.read_text()) if path.exists() else None


def per_image(values, digits: int = 4) -> list:
    """A tensor (or sequence) of per-image numbers as a list of rounded floats, for a JSON file."""
    return [round(float(v), digits) for v in values]


def mean_se(values) -> tuple[float, float]:
    """(mean, standard error of the mean); the error is NaN for fewer than two values."""
    values = list(values)
    n = len(values)
    m = sum(values) / n
    if n < 2:
        return m, float("nan")
    return m, math.sqrt(sum((v - m) ** 2 for v in values) / (n - 1) / n)


@contextlib.contextmanager
def task_lock(out: Path, name: str, wait: bool):
    """An exclusive lock on task ``name`` (``OUT/locks/NAME.lock``): yields True once held; with
    ``wait`` false, yields False at once where another process holds it."""
    path = Path(out) / LOCKS / f"{name}.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def fit_resumable(run_dir: Path, model, guide, objective, train_x, valid_x, config, spec: dict) -> dict:
    """Train into ``run_dir`` with ``pyro_air.train.fit``, resuming from its checkpoint where there is
    one (a run killed before its first checkpoint starts again); returns what a task records about the
    training: best validation score and epoch, the validation curve, time per epoch, whether it resumed."""
    from pyro_air.train import fit
    from pyro_air.train import run_dir as run_dirs

    run_dir = Path(run_dir)
    resume = (run_dir / "checkpoint.pt").exists()
    if resume:
        log(f"{run_dir.name}: resuming from its checkpoint")
    elif run_dirs.holds_training(run_dir):  # killed before its first checkpoint: start again
        for name in run_dirs.TRAINING_FILES:
            (run_dir / name).unlink(missing_ok=True)
    wall, cpu = time.perf_counter(), time.process_time()
    result = fit(model, guide, objective, train_x, valid_x, config, run_dir=run_dir, spec=spec, resume=resume)
    key = f"valid_iwae{config.valid_num_samples}"
    history = result.history
    epoch_seconds = sorted(r["epoch_seconds"] for r in history)
    return {"epochs": config.epochs, "best_valid": result.best_valid, "best_epoch": result.best_epoch,
            "valid_curve": [(r["epoch"], r[key]) for r in history if key in r],
            "final_train_loss": history[-1]["train_loss"],
            "epoch_seconds_median": epoch_seconds[len(epoch_seconds) // 2],
            "epoch_seconds_sum": sum(epoch_seconds),
            "last_process_wall_seconds": time.perf_counter() - wall,
            "last_process_cpu_seconds": time.process_time() - cpu, "resumed": resume}


def bdmc_chunk(path: Path, model, guide, simulated: tuple, num_steps: int, num_chains: int, seed: int) -> dict:
    """One resumable piece of BDMC (Grosse et al. 2015) on simulated points: the forward (lower) and
    reverse (upper) AIS bounds of log p(x) per point, written atomically to ``path`` once; read back
    from it when it is there already."""
    if not Path(path).exists():
        from pyro_air.evaluate import bdmc

        wall, cpu = time.perf_counter(), time.process_time()
        r = bdmc(model, len(simulated[0]), num_steps=num_steps, num_chains=num_chains, guide_or_prior=guide,
                 simulated=simulated, seed=seed)
        write_json(path, {"T": num_steps, "chains": num_chains, "lower": per_image(r.lower, 5),
                          "upper": per_image(r.upper, 5), "wall_seconds": time.perf_counter() - wall,
                          "cpu_seconds": time.process_time() - cpu})
    return read_json(path)


class PlanWorker:
    """Runs ``plan`` in order (module docstring). Subclasses set ``plan`` and ``scales`` and define
    ``done``, ``report`` and one ``run_<kind>`` method per task kind."""

    plan: list = []
    scales: dict = {}

    def __init__(self, out: Path, scale: str = "full", settings: dict | None = None):
        names = [t["name"] for t in self.plan]
        if len(set(names)) != len(names):
            raise ValueError(f"task names must be unique: {sorted(n for n in set(names) if names.count(n) > 1)}")
        if scale not in self.scales:
            raise ValueError(f"unknown scale {scale!r}; use one of {', '.join(self.scales)}")
        self.out, self.scale = Path(out), scale
        self.s = dict(self.scales[scale])
        for key, value in (settings or {}).items():
            if key not in self.s:
                raise ValueError(f"unknown size {key!r}; the sizes are {', '.join(self.s)}")
            self.s[key] = value
        self.tasks = {t["name"]: t for t in self.plan}
        self.runs = self.out / "runs"  # one training run per folder: runs/<task>/
        self._splits = {}

    def split(self, name: str) -> torch.Tensor:
        """An MNIST split, statically binarized (draw 0), loaded once; the training split cut to the
        scale's ``train_size`` (where the scale has one)."""
        if name not in self._splits:
            from pyro_air import data

            size = self.s.get("train_size") if name == "train" else None
            self._splits[name] = data.load("mnist", name, binarize="static", train_size=size)
        return self._splits[name]

    # -- what a subclass defines -------------------------------------------------------------------
    # The module beside the worker that reads its results: ``task_done(out, t, sizes)`` and
    # ``write_report(out, plan, sizes)``; imported when first needed, so --plan and tests stay light.
    report_module: str = ""

    def done(self, t: dict) -> bool:
        """Whether task ``t``'s result is on disk (the report module's ``task_done``)."""
        return importlib.import_module(self.report_module).task_done(self.out, t, self.s)

    def report(self) -> None:
        """Rewrite the tables from what is on disk (the report module's ``write_report``)."""
        importlib.import_module(self.report_module).write_report(self.out, self.plan, self.s)

    def describe(self, t: dict) -> str:
        """One line on task ``t`` for ``--plan`` and the log."""
        return t.get("change", "")

    def partial(self, name: str) -> Path:
        """Where evaluation ``name`` keeps its finished batches until its result file is written
        (``partial/NAME/``; module docstring, "Resume")."""
        return self.out / "partial" / name

    def partial_done(self, name: str) -> None:
        """The result of ``name`` is on disk: drop its partial folder (the evaluators delete their files;
        anything left there belonged to this evaluation)."""
        shutil.rmtree(self.partial(name), ignore_errors=True)

    # -- running tasks -----------------------------------------------------------------------------
    def run(self, t: dict) -> None:
        """Run task ``t`` by its kind's method, ``run_<kind>``."""
        method = getattr(self, "run_" + t["kind"].replace("-", "_"), None)
        if method is None:
            raise ValueError(f"task {t['name']}: no method run_{t['kind'].replace('-', '_')} for its kind {t['kind']!r}")
        log(f"task {t['name']} ({t['kind']}): {self.describe(t)}")
        if t["kind"] == "train" and self.weights_gone(t["name"]) and not self.restore_from_zoo(t["name"]):
            self.set_aside(t["name"])   # finished elsewhere, not in the zoo: train it again
            self.partial_done(t["name"])  # an evaluation of the old weights, if one was cut short
        method(t)

    def task_lock(self, name: str, wait: bool):
        return task_lock(self.out, name, wait)

    def wait_for(self, name: str) -> None:
        """Run task ``name`` here, or wait while another worker runs it (its lock)."""
        with self.task_lock(name, wait=True):
            if not self.done(self.tasks[name]):
                self.run(self.tasks[name])

    # -- weights that did not survive a change of machine ----------------------------------------------
    # task -> zoo name of the runs the experiment ships (its export script's table): weights that can
    # come back from the zoo when the machine that trained them is gone
    zoo_names: dict = {}

    def restore_from_zoo(self, name: str, root=None) -> bool:
        """Write run ``name``'s ``best.pt`` from its zoo entry, when the run finished (train.json) and the
        entry is this run's: the same seed and the same best epoch. The zoo file is verified against
        its SHA-256 and holds the float32 weights that were exported from this best.pt, so every later
        result equals what the lost file would have given. False (nothing written) otherwise.
        ``root``: the zoo directory (default ``$PYRO_AIR_ZOO``, else the package's)."""
        from pyro_air.train import checkpoints as ckpt_io
        from pyro_air.zoo import manifest

        run_dir, zoo_name = self.runs / name, self.zoo_names.get(name)
        if zoo_name is None or not (run_dir / "train.json").exists():
            return False
        if not (manifest.zoo_root(root) / manifest.MANIFEST_NAME).is_file() or zoo_name not in manifest.names(root):
            return False
        entry, train = manifest.entry(zoo_name, root), json.loads((run_dir / "train.json").read_text())
        if (entry.get("seed"), entry["budget"].get("best_epoch")) != (train["task"].get("seed"), train.get("best_epoch")):
            return False
        weights = ckpt_io.load(manifest.verified_weight_path(entry, root))
        ckpt_io.atomic_save({"format_version": weights["format_version"], "spec": entry["spec"],
                             "epoch": train["best_epoch"], "model_state": weights["model_state"],
                             "guide_state": weights["guide_state"]}, run_dir / "best.pt")
        log(f"{name}: its weights are not on this machine: taken back from the zoo entry {zoo_name}")
        return True

    def weights_gone(self, name: str) -> bool:
        """Whether run ``name`` finished (its train.json is committed) but its weights (``best.pt``, not
        tracked) are not on this machine."""
        run_dir = self.runs / name
        return (run_dir / "train.json").exists() and not (run_dir / "best.pt").exists()

    def set_aside(self, name: str) -> None:
        """Move a finished run whose weights are gone into ``runs/NAME/first-training/``: its per-image
        result, metrics and train.json, in that order (train.json, the mark of a finished run, last), so
        that an interruption at any point leaves a state that this method finishes. ``run`` calls
        it before a train task's ``run_train`` when ``weights_gone``, which then trains the run again with its seed: on
        another CPU the numbers may differ by float rounding, so every later result of the run comes
        from the new weights, and the first ones stay on record beside them."""
        run_dir = self.runs / name
        keep = run_dir / "first-training"
        keep.mkdir(parents=True, exist_ok=True)
        for source, target in ((self.out / "per_image" / f"{name}.json", keep / "per_image.json"),
                               (run_dir / "metrics.jsonl", keep / "metrics.jsonl"),
                               (run_dir / "train.json", keep / "train.json")):
            if source.exists():
                os.replace(source, target)
        log(f"{name}: its weights are not on this machine: the first training is kept in {keep}; training again")

    def load(self, name: str):
        """(model, guide, spec) of the run of task ``name``: run first if it has not finished; if it
        finished on another machine and its weights are gone, taken back from the zoo
        (``restore_from_zoo``) or else run again (``set_aside``)."""
        from pyro_air.runs import load_run

        self.wait_for(name)
        if self.weights_gone(name):
            self.restore_from_zoo(name)
        if not (self.runs / name / "best.pt").exists():
            with self.task_lock(name, wait=True):
                if not (self.runs / name / "best.pt").exists():
                    self.run(self.tasks[name])
        return load_run(self.runs / name)

    def check_only(self, only) -> None:
        unknown = [name for name in only or () if name not in self.tasks]
        if unknown:
            raise ValueError(f"unknown task(s) {', '.join(unknown)}; --plan lists them")

    def work(self, only=None) -> None:
        """Every task of the plan (or of ``only``) that is not done, in plan order."""
        self.check_only(only)
        busy = []
        for t in self.plan:
            if (only and t["name"] not in only) or self.done(t):
                continue
            with self.task_lock(t["name"], wait=False) as mine:
                if not mine:  # another worker runs it: go on, and wait for it at the end
                    busy.append(t["name"])
                    continue
                if not self.done(t):
                    self.run(t)
            self.report()
        for name in busy:
            self.wait_for(name)
        if busy:
            self.report()
        log("plan done")

    def plan_lines(self) -> list:
        return [f"{'done   ' if self.done(t) else 'pending'}  {t['name']:<24} {self.describe(t)}" for t in self.plan]


# sessions 1-4 ran on one 2-core machine and did not name its CPU in their records
UNNAMED_CPU = "Intel(R) Xeon(R) Processor with AMX (sessions 1-4; those records do not name their CPU)"


def record_cpus(out: Path) -> dict:
    """{CPU: sorted task names} over a results folder's records (runs/NAME/train.json,
    per_image/NAME.json, estimators/NAME/*.json): where each number was computed, for the report."""
    out, found = Path(out), {}
    for pattern, name_of in (("runs/*/train.json", lambda p: p.parent.name), ("per_image/*.json", lambda p: p.stem),
                             ("estimators/*/*.json", lambda p: p.parent.name)):
        for path in out.glob(pattern):
            try:
                cpu = json.loads(path.read_text()).get("cpu") or UNNAMED_CPU
            except (OSError, ValueError, AttributeError):
                continue
            found.setdefault(cpu, set()).add(name_of(path))
    return {cpu: sorted(names) for cpu, names in sorted(found.items())}


def cpus_line(out: Path) -> str:
    """One line for a report: each CPU and the tasks whose records it computed (the unnamed one counted)."""
    parts = []
    for cpu, names in record_cpus(out).items():
        parts.append(f"{cpu}: {len(names)} tasks" if cpu == UNNAMED_CPU else f"{cpu}: {', '.join(names)}")
    return "CPUs, one thread per worker - " + ("; ".join(parts) if parts else "no records yet") + "."


def mean_se_record(pair) -> dict:
    """(mean, s.e.) as the zoo's test_numbers record it: {"mean": ..., "stderr": ...}, 4 decimals."""
    return {"mean": round(pair[0], 4), "stderr": round(pair[1], 4)}


def seed_levels(rows: dict, prefix: str, seeds=range(3)) -> dict:
    """{task: -log p(x)} of the runs ``PREFIX-s0``, ``-s1``, ... whose test numbers are in ``rows``."""
    return {n: round(rows[n]["nll"][0], 4) for n in (f"{prefix}-s{i}" for i in seeds) if "nll" in rows.get(n, {})}


def export_main(export_task, names: dict, scales: dict, default_out: Path, description: str = "", argv=None) -> int:
    """The command line of a worker's zoo export (``experiments/*/export*.py``): for each task -> zoo name
    of ``names``, ``export_task(out, task, name, sizes, root=zoo)`` (None: not finished, skipped with a
    note); an entry already in the zoo is kept unless --replace. Returns the exit status."""
    from pyro_air import zoo

    p = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--replace", action="store_true", help="re-export models already in the zoo")
    p.add_argument("--out", default=str(default_out), help="the worker's output folder")
    p.add_argument("--zoo", default=None, help="the zoo directory (default: $PYRO_AIR_ZOO, else the package's)")
    p.add_argument("--tiny", action="store_true", help="the worker ran with --tiny (its sizes; tests)")
    p.add_argument("--only", nargs="+", metavar="NAME", help="only these zoo entries (default: every one)")
    args = p.parse_args(argv)
    out = Path(args.out)
    if not out.is_dir():
        p.error(f"{out} is no folder; pass the worker's --out")
    unknown = sorted(set(args.only or ()) - set(names.values()))
    if unknown:
        p.error(f"--only: {', '.join(unknown)} not exported by this script; choose from {', '.join(names.values())}")
    s = scales["tiny" if args.tiny else "full"]
    held = zoo.names(args.zoo) if (zoo.zoo_root(args.zoo) / "manifest.json").is_file() else []
    for task, name in names.items():
        if args.only and name not in args.only:
            continue
        if name in held and not args.replace:
            print(f"keep {name}: in the zoo already (--replace exports it again)")
            continue
        if name in held and not (out / "runs" / task / "best.pt").is_file():
            # its weights did not survive a change of machine: the shipped file is the only copy
            print(f"keep {name}: {task}'s best.pt is gone, so the shipped entry stays as it is")
            continue
        entry = export_task(out, task, name, s, root=args.zoo)
        if entry is None:
            print(f"skip {name}: {task} has not finished its test evaluation")
            continue
        print(f"exported {name}: {entry['size_bytes'] / 1e6:.1f} MB, check {entry['check']['neg_log_px']:.3f}")
    return 0


def parse_settings(items) -> dict:
    settings = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"--set takes KEY=JSON, got {item!r}")
        try:
            settings[key] = json.loads(value)
        except json.JSONDecodeError as err:
            raise ValueError(f"--set {key}: {value!r} is not JSON ({err})") from None
    return settings


def run_main(worker_class, argv=None, default_out: Path | None = None, description: str = "") -> int:
    """The command line of a plan worker (module docstring); returns the exit status."""
    p = argparse.ArgumentParser(description=(description or "").strip().split("\n")[0])
    p.add_argument("--worker", action="store_true", help="run the plan (resumes; skips finished tasks)")
    p.add_argument("--report", action="store_true", help="rewrite table.md and results.json from disk")
    p.add_argument("--plan", action="store_true", help="print the plan and each task's state")
    p.add_argument("--carry", action="store_true",
                   help="commit the unfinished tasks' resume state (checkpoints, partial evaluations) so that a "
                        "new machine continues them; untrack what finished tasks left (experiments/carry_state.py)")
    p.add_argument("--only", nargs="+", metavar="TASK", help="run only these tasks (in plan order)")
    p.add_argument("--out", default=None if default_out is None else str(default_out), required=default_out is None)
    p.add_argument("--tiny", action="store_true", help="every size shrunk (for testing the worker and its resume)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=JSON", dest="settings",
                   help="override a size of the scale, e.g. --set epochs=30 (tests only: results are not comparable)")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    if worker_class.__module__ == "__main__":
        # a worker run as a script is __main__; its report module's `from <script> import ...` must find
        # this copy, not load a second one from disk (which may be newer than the running code)
        main = sys.modules["__main__"]
        sys.modules.setdefault(Path(main.__file__).stem, main)
    if not (args.worker or args.report or args.plan or args.carry):
        p.error("give --worker, --report, --plan or --carry")
    try:
        worker = worker_class(Path(args.out), "tiny" if args.tiny else "full", parse_settings(args.settings))
        worker.check_only(args.only)
    except ValueError as err:
        p.error(str(err))
    threads = torch.get_num_threads()
    torch.set_num_threads(args.threads)
    try:
        return _run(worker, args)
    finally:  # for a caller in the same process (the tests)
        torch.set_num_threads(threads)


def _run(worker, args) -> int:
    from pyro_air.train.signals import TrainingInterrupted

    worker.out.mkdir(parents=True, exist_ok=True)
    if args.plan:
        print("\n".join(worker.plan_lines()))
    if args.worker:
        log(f"worker started (pid {os.getpid()}, scale {worker.scale}, {args.threads} thread"
            f"{', only ' + ' '.join(args.only) if args.only else ''})")
        try:
            worker.work(args.only)
        except TrainingInterrupted as err:  # SIGINT / SIGTERM: the checkpoint holds the position
            log(f"worker stopped: {err}")
            return err.exit_code
        except Exception as err:  # one line in the log; the same command resumes after the fix
            log(f"worker failed: {type(err).__name__}: {err}")
            traceback.print_exc()
            return 1
    if args.report:
        worker.report()
    if args.carry:
        from carry_state import carry

        try:
            done = carry(worker, args.only)
        except (ValueError, RuntimeError) as err:
            print(f"--carry: {err}", file=sys.stderr)
            return 1
        print(f"carried {len(done['carried'])} file(s), {done['bytes'] / 1e6:.1f} MB; untracked "
              f"{len(done['dropped'])}; " + (f"commit {done['commit'][:10]}" if done["commit"] else "nothing to commit"))
    return 0
