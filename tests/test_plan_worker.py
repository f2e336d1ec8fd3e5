"""experiments/plan_worker.py: the resumable plan worker's skip-if-done, --only, per-task locks and command
line, on a toy plan (no training)."""
import sys
import threading
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "experiments"))

import plan_worker  # noqa: E402
from plan_worker import PlanWorker, read_json, run_main, task_lock, write_json  # noqa: E402


class Toy(PlanWorker):
    """a and b stand alone; c needs a's result (it waits for a, as a full run waits for its grid)."""

    plan = [{"name": "a", "kind": "make", "change": "the first"}, {"name": "b", "kind": "make"},
            {"name": "c", "kind": "make-after", "needs": "a"}]
    scales = {"full": {"n": 3, "fail": False}, "tiny": {"n": 1, "fail": False}}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.ran = []

    def done(self, t):
        return (self.out / f"{t['name']}.json").exists()

    def report(self):
        write_json(self.out / "report.json", sorted(p.stem for p in self.out.glob("?.json")))

    def run_make(self, t):
        if t["name"] == "b" and self.s.get("fail"):
            raise RuntimeError("b broke")
        self.ran.append(t["name"])
        write_json(self.out / f"{t['name']}.json", {"n": self.s["n"]})

    def run_make_after(self, t):
        self.wait_for(t["needs"])
        self.run_make(t)


def test_work_runs_the_plan_in_order_and_skips_what_is_on_disk(tmp_path):
    worker = Toy(tmp_path)
    worker.work()
    assert worker.ran == ["a", "b", "c"]
    assert read_json(tmp_path / "report.json") == ["a", "b", "c"]
    again = Toy(tmp_path)
    again.work()
    assert again.ran == []                      # every result is on disk
    (tmp_path / "b.json").unlink()              # a lost (or never finished) result is redone, alone
    again.work()
    assert again.ran == ["b"]
    assert read_json(tmp_path / "missing.json") is None


def test_only_runs_the_named_tasks_and_what_they_wait_for(tmp_path):
    worker = Toy(tmp_path)
    worker.work(only=["c"])
    assert worker.ran == ["a", "c"]             # c waited for a, which ran here; b was not asked for
    with pytest.raises(ValueError, match="unknown task"):
        worker.work(only=["nope"])


def test_a_task_another_worker_holds_is_passed_over_and_waited_for(tmp_path):
    """Another worker holds a's lock: this one goes on with b, then c waits for a; when the other worker
    has written a's result and let go, c runs and a is never run twice."""
    held, worker = threading.Event(), Toy(tmp_path)

    def other_worker():
        with task_lock(tmp_path, "a", wait=False) as mine:
            assert mine
            held.set()
            deadline = time.monotonic() + 30
            while not (tmp_path / "b.json").exists() and time.monotonic() < deadline:
                time.sleep(0.01)
            time.sleep(0.2)                     # c is now waiting for a's lock
            write_json(tmp_path / "a.json", {"n": "other"})

    thread = threading.Thread(target=other_worker)
    thread.start()
    assert held.wait(10)
    worker.work()
    thread.join(10)
    assert worker.ran == ["b", "c"]
    assert read_json(tmp_path / "a.json") == {"n": "other"}
    with task_lock(tmp_path, "a", wait=False) as mine:   # let go at the end
        assert mine


def test_command_line_plan_set_tiny_only_and_failures(tmp_path, capsys):
    out = tmp_path / "out"
    assert run_main(Toy, ["--plan", "--out", str(out)]) == 0
    assert capsys.readouterr().out.splitlines()[0].split() == ["pending", "a", "the", "first"]
    assert run_main(Toy, ["--worker", "--tiny", "--set", "n=7", "--only", "a", "--out", str(out)]) == 0
    assert read_json(out / "a.json") == {"n": 7}
    assert run_main(Toy, ["--plan", "--out", str(out)]) == 0
    assert [line.split()[0] for line in capsys.readouterr().out.splitlines() if not line.startswith("[")] == [
        "done", "pending", "pending"]
    for bad in (["--worker", "--only", "zz"], ["--worker", "--set", "m=1"], ["--worker", "--set", "n"], []):
        with pytest.raises(SystemExit) as err:
            run_main(Toy, [*bad, "--out", str(out)])
        assert err.value.code == 2
    assert run_main(Toy, ["--worker", "--set", "fail=true", "--out", str(out)]) == 1   # an error: one line, status 1
    assert "worker failed: RuntimeError: b broke" in capsys.readouterr().out
    assert not (out / "b.json").exists()
    assert run_main(Toy, ["--worker", "--out", str(out)]) == 0       # the same command resumes
    assert read_json(out / "report.json") == ["a", "b", "c"]


def test_unknown_settings_and_duplicate_names_are_refused(tmp_path):
    with pytest.raises(ValueError, match="unknown size 'm'; the sizes are n, fail"):
        Toy(tmp_path, settings={"m": 1})

    class Twice(Toy):
        plan = [{"name": "a", "kind": "make"}, {"name": "a", "kind": "make"}]

    with pytest.raises(ValueError, match="unique"):
        Twice(tmp_path)
    worker = Toy(tmp_path)
    with pytest.raises(ValueError, match="no method run_other"):
        worker.run({"name": "x", "kind": "other"})


def test_json_files_and_numbers(tmp_path):
    path = tmp_path / "deep" / "r.json"         # parents made; the write itself is pyro_air.support.atomic's
    write_json(path, {"v": [1, 2]})
    assert read_json(path) == {"v": [1, 2]}
    assert plan_worker.per_image([1.234567, 2.0], digits=3) == [1.235, 2.0]
    m, se = plan_worker.mean_se([1.0, 2.0, 3.0])
    assert m == 2.0 and se == pytest.approx((1 / 3) ** 0.5)


def test_export_main_exports_finished_tasks_skips_the_rest_and_refuses_a_missing_folder(tmp_path, capsys):
    """A fake export: task "a" has finished (an entry comes back), "b" has not (None); the sizes passed
    are the scale asked for; a folder that does not exist is one line on stderr and exit status 2."""
    calls = []

    def export_task(out, task, name, s, root=None):
        calls.append((task, name, s["n"], root))
        return {"size_bytes": 2e6, "check": {"neg_log_px": 1.5}} if task == "a" else None

    scales = {"full": {"n": 100}, "tiny": {"n": 1}}
    names = {"a": "zoo-a", "b": "zoo-b"}
    zoo_dir = str(tmp_path / "zoo")
    assert plan_worker.export_main(export_task, names, scales, tmp_path, argv=["--tiny", "--zoo", zoo_dir]) == 0
    assert calls == [("a", "zoo-a", 1, zoo_dir), ("b", "zoo-b", 1, zoo_dir)]
    printed = capsys.readouterr().out
    assert "exported zoo-a: 2.0 MB, check 1.500" in printed and "skip zoo-b: b has not finished" in printed
    with pytest.raises(SystemExit) as stop:
        plan_worker.export_main(export_task, names, scales, tmp_path, argv=["--out", str(tmp_path / "missing")])
    assert stop.value.code == 2 and "is no folder; pass the worker's --out" in capsys.readouterr().err


def test_export_main_only_some_entries_and_a_replace_without_weights_keeps_the_shipped_entry(tmp_path, capsys,
                                                                                           monkeypatch):
    """--only limits the export to the names given (an unknown name is one line and exit status 2);
    --replace keeps an entry already in the zoo whose run's best.pt is gone, rather than failing on it."""
    calls = []

    def export_task(out, task, name, s, root=None):
        calls.append(task)
        return {"size_bytes": 1e6, "check": {"neg_log_px": 2.0}}

    zoo_dir = tmp_path / "zoo"
    zoo_dir.mkdir()
    (zoo_dir / "manifest.json").write_text("{}")
    from pyro_air import zoo
    monkeypatch.setattr(zoo, "names", lambda root=None: ["zoo-a", "zoo-b"])  # what the zoo holds already
    (tmp_path / "runs" / "b").mkdir(parents=True)
    (tmp_path / "runs" / "b" / "best.pt").write_bytes(b"weights")
    names = {"a": "zoo-a", "b": "zoo-b", "c": "zoo-c"}
    scales = {"full": {}, "tiny": {}}
    argv = ["--zoo", str(zoo_dir), "--replace"]
    assert plan_worker.export_main(export_task, names, scales, tmp_path, argv=argv + ["--only", "zoo-a", "zoo-b"]) == 0
    assert calls == ["b"]
    assert "keep zoo-a: a's best.pt is gone" in capsys.readouterr().out
    with pytest.raises(SystemExit) as stop:
        plan_worker.export_main(export_task, names, scales, tmp_path, argv=argv + ["--only", "zoo-x"])
    assert stop.value.code == 2 and "--only: zoo-x not exported by this script" in capsys.readouterr().err


def test_set_aside_moves_a_finished_runs_records_and_is_safe_to_repeat(tmp_path):
    worker = Toy(tmp_path, "tiny")
    run = tmp_path / "runs" / "a"
    write_json(run / "train.json", {"best_valid": -1.0})
    (run / "metrics.jsonl").write_text("{}\n")
    write_json(tmp_path / "per_image" / "a.json", {"log_px": [-1.0]})
    assert worker.weights_gone("a") and not worker.weights_gone("b")
    worker.set_aside("a")
    kept = run / "first-training"
    assert read_json(kept / "train.json") == {"best_valid": -1.0} and read_json(kept / "per_image.json")
    assert (kept / "metrics.jsonl").exists() and not (run / "train.json").exists()
    assert not worker.weights_gone("a")  # nothing finished is left: the run trains from scratch
    worker.set_aside("a")  # an interrupted set-aside, repeated, loses nothing
    assert read_json(kept / "train.json") == {"best_valid": -1.0}


def test_the_report_names_each_records_cpu_and_counts_the_unnamed(tmp_path):
    write_json(tmp_path / "runs" / "a" / "train.json", {"cpu": "AMD EPYC"})
    write_json(tmp_path / "per_image" / "a.json", {"cpu": "AMD EPYC"})
    write_json(tmp_path / "estimators" / "est-b" / "iwae_points0-5.json", {"cpu": "AMD EPYC"})
    write_json(tmp_path / "per_image" / "old.json", {"log_px": []})
    assert plan_worker.record_cpus(tmp_path) == {"AMD EPYC": ["a", "est-b"], plan_worker.UNNAMED_CPU: ["old"]}
    line = plan_worker.cpus_line(tmp_path)
    assert "AMD EPYC: a, est-b" in line and plan_worker.UNNAMED_CPU + ": 1 tasks" in line
    assert plan_worker.cpus_line(tmp_path / "empty").endswith("no records yet.")
