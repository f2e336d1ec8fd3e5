"""The layout of experiments/ (docs/design.md, "Layout"; experiments/README.md).

experiments/<topic>/ holds the scripts, their configs and RESULTS.md; every output a run leaves lies
in experiments/<topic>/results/<run>/; logs stay out of git; every path a RESULTS.md (or the
experiments README) names exists, so moving an output without its references fails here.
"""
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXPERIMENTS = ROOT / "experiments"

# What may lie in experiments/<topic>/ outside results/: scripts, shell wrappers, configs, the texts.
SOURCE_SUFFIXES = {".py", ".sh", ".toml", ".yaml", ".yml", ".cfg", ".ini"}
SOURCE_NAMES = {"RESULTS.md", "README.md", ".gitignore"}
# Files a RESULTS.md may name: a path with a "/" or a bare name with one of these endings.
FILE_SUFFIXES = (".py", ".sh", ".md", ".json", ".jsonl", ".png", ".pt", ".txt", ".ipynb", ".csv")


def _tracked() -> list[str]:
    try:
        out = subprocess.run(["git", "ls-files", "-z", "--", "experiments"], cwd=ROOT, capture_output=True,
                             text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout")
    files = [f for f in out.split("\0") if f]
    if not files:
        pytest.skip("experiments/ is not tracked here")
    return files


def misplaced(paths) -> list[str]:
    """Tracked files under experiments/ that break the layout, each with the reason."""
    bad = []
    for path in paths:
        parts = path.split("/")
        name = parts[-1]
        if path.endswith(".log"):
            bad.append(f"{path}: a log (logs are git-ignored)")
        elif len(parts) == 2:
            if name != "README.md" and Path(name).suffix != ".py":  # shared code, e.g. plan_worker.py
                bad.append(f"{path}: only README.md and shared modules sit in experiments/ itself")
        elif "results" in parts[2:-1]:
            if parts[2] != "results" or len(parts) < 5:
                bad.append(f"{path}: outputs go to experiments/<topic>/results/<run>/")
        elif not (name in SOURCE_NAMES or Path(name).suffix in SOURCE_SUFFIXES):
            bad.append(f"{path}: an output outside experiments/<topic>/results/<run>/")
    return bad


def test_the_layout_check_finds_what_it_should():
    good = ["experiments/README.md", "experiments/air/RESULTS.md", "experiments/air/run_air.py",
            "experiments/air/state.sh", "experiments/air/results/cpu/results.md",
            "experiments/air/results/full/final/runs/mnist/k1/vae/seed0/train.json",
            "experiments/air/results/fidelity/table.md"]
    assert misplaced(good) == []
    bad = ["experiments/air/fidelity/table.md", "experiments/avo/figure3.json", "experiments/air/out/results.md", "experiments/air/results/table.md",
           "experiments/air/run_air.log", "experiments/air/results/cpu/worker0.log", "experiments/notes.txt",
           "experiments/ais/out/results/x.json"]
    assert [line.split(":")[0] for line in misplaced(bad)] == bad


def test_every_tracked_output_lies_in_a_results_run_folder_and_no_log_is_tracked():
    assert misplaced(_tracked()) == []


def test_logs_under_experiments_are_git_ignored():
    probes = ["experiments/air/results/full/worker0.log", "experiments/encoders/results/overfit/worker_a.log",
              "experiments/newtopic/results/run/worker.log"]
    try:
        out = subprocess.run(["git", "check-ignore", "--no-index", *probes], cwd=ROOT, capture_output=True,
                             text=True).stdout
    except OSError:
        pytest.skip("git is not installed")
    assert out.split() == probes


def test_every_topic_has_a_results_md_and_is_described_in_the_experiments_readme():
    readme = (EXPERIMENTS / "README.md").read_text()
    topics = sorted(p.name for p in EXPERIMENTS.iterdir() if p.is_dir() and not p.name.startswith((".", "_")))
    assert [t for t in topics if not (EXPERIMENTS / t / "RESULTS.md").exists()] == []
    assert [t for t in topics if f"`{t}/`" not in readme] == []


def _expand_braces(token: str) -> list[str]:
    m = re.search(r"\{([^{}]*)\}", token)
    if not m:
        return [token]
    return [x for alt in m.group(1).split(",") for x in _expand_braces(token[:m.start()] + alt + token[m.end():])]


def _exists(token: str, base: Path) -> bool:
    for candidate in _expand_braces(token):
        found = False
        for root in (base, ROOT):
            if any(ch in candidate for ch in "*?["):
                pattern = re.sub(r"\*\*(?=[^/])", "**/*", candidate)  # a/**.json: any depth
                found = next(iter(root.glob(pattern)), None) is not None
            else:
                found = (root / candidate).exists()
            if found:
                break
        if not found:
            return False
    return True


def named_paths(text: str) -> set[str]:
    """Repository paths a markdown text names: every file-like token of an inline code span, and every
    experiments/... token of a code block (fenced, or indented by four spaces: the commands)."""
    fenced = re.findall(r"^```.*?^```", text, flags=re.M | re.S)
    prose = re.sub(r"^```.*?^```", "", text, flags=re.M | re.S)
    code = "\n".join(fenced + re.findall(r"^ {4}.*$", prose, flags=re.M))
    tokens = [tok for span in re.findall(r"`([^`\n]+)`", prose) for tok in span.split()]
    tokens += re.findall(r"(?<![\w./-])experiments/[^\s`'\")]+", code)
    found = set()
    for token in tokens:
        token = token.rstrip(".,;:)")
        if (token.startswith(("/", "-", "$", "~")) or "://" in token or "<" in token or "=" in token
                or token.endswith(".log") or token.startswith("shared/")):  # shared/: outside the repository
            continue
        if "/" in token or token.endswith(FILE_SUFFIXES):
            found.add(token)
    return found


def test_named_paths_reads_spans_and_commands():
    text = ("Numbers in `results/gaps/results.json`, log `results/run.log`, see `pyro_air.compare` and "
            "`/tmp/x/y.json`.\n\n    python experiments/air/run_air.py --out experiments/air/results/k8\n\n"
            "```bash\npython experiments/avo/toy.py figure3\n```\n")
    assert named_paths(text) == {"results/gaps/results.json", "experiments/air/run_air.py",
                                 "experiments/air/results/k8", "experiments/avo/toy.py"}


def _ignored(paths: list[str]) -> set[str]:
    """The paths (relative to the repository) that git ignores: named as kept outside git on purpose."""
    try:
        out = subprocess.run(["git", "check-ignore", "--no-index", *paths], cwd=ROOT, capture_output=True,
                             text=True).stdout
    except OSError:
        return set()
    return set(out.split())


def _missing(doc: Path, tokens) -> list[str]:
    absent = [token for token in sorted(tokens)
              if not (_exists(token, doc.parent) if "/" in token
                      else any(doc.parent.rglob(token)) or (ROOT / token).exists())]
    here = doc.parent.relative_to(ROOT).as_posix()
    where = {token: token if token.startswith("experiments/") else f"{here}/{token}" for token in absent}
    ignored = _ignored([where[t] for t in absent if "/" in t]) if absent else set()
    return [f"{doc.relative_to(ROOT)}: {token}" for token in absent
            if where[token].rstrip("/") not in {p.rstrip("/") for p in ignored}]


def test_every_path_named_in_a_results_md_exists():
    missing = [line for doc in sorted(EXPERIMENTS.glob("*/RESULTS.md")) for line in _missing(doc, named_paths(doc.read_text()))]
    assert missing == [], "\n".join(missing)


def test_every_script_and_file_the_experiments_readme_names_exists():
    # its results/<run>/ folders are per topic (the table's last column), so only whole paths and file names
    doc = EXPERIMENTS / "README.md"
    tokens = {t for t in named_paths(doc.read_text()) if t.startswith("experiments/") or "/" not in t}
    assert _missing(doc, tokens) == []
