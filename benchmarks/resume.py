"""What a resumable evaluation costs: ``log_likelihood`` / ``elbo`` with and without ``resume_file``.

    python -m benchmarks.resume              # about a minute; writes benchmarks/RESUME.md
    python -m benchmarks.resume --quick

Why: ``resume_file`` (``pyro_air.evaluate.resume``) fingerprints model, guide and data (SHA-256 of their
bytes) once per call and rewrites the file of finished batches at most every ``SAVE_EVERY_SECONDS``; a
write after every batch (the first version) made a cheap evaluation 1.6x slower on the AMD EPYC. Rows,
interleaved in one run (``benchmarks.timing``), on the project's 784-500-500-50 VAE at initialization and
real MNIST test images, for a cheap estimate (the 10-draw ELBO of 2000 images, 20 batches) and a costly one
(IWAE-1000 on 200 images):

- ``plain``: no resume file - the baseline;
- ``resume_file``: as the workers call it;
- ``resume_file, a write per batch``: ``SAVE_EVERY_SECONDS = 0``, what the interval saves.
"""
from __future__ import annotations

import platform
import tempfile
from pathlib import Path

import torch

from benchmarks.timing import interleave, ratio_table, report_script_arguments
from pyro_air import data, guides, models
from pyro_air.backend.report import kernel_report
from pyro_air.evaluate import elbo, log_likelihood
from pyro_air.evaluate import resume as resume_module

ROOT = Path(__file__).resolve().parent.parent


def cases(estimator, model, guide, x, num_samples: int, folder: Path) -> dict:
    def plain():
        estimator(model, guide, x, num_samples=num_samples, seed=0)

    def resumable():
        estimator(model, guide, x, num_samples=num_samples, seed=0, resume_file=folder / "partial.pt")

    def every_batch():
        interval = resume_module.SAVE_EVERY_SECONDS
        resume_module.SAVE_EVERY_SECONDS = 0.0
        try:
            resumable()
        finally:
            resume_module.SAVE_EVERY_SECONDS = interval

    return {"plain": plain, "resume_file": resumable, "resume_file, a write per batch": every_batch}


def main(argv=None) -> None:
    args = report_script_arguments(__doc__.splitlines()[0], ROOT / "benchmarks" / "RESUME.md", argv)
    torch.manual_seed(0)
    model, guide = models.build("bernoulli-vae"), guides.build("gaussian")
    test = data.load("mnist", "test")
    rounds = 4 if args.quick else 12
    workloads = [("ELBO, 10 draws, 2000 images (20 batches)", elbo, test[:2000], 10),
                 ("IWAE-1000, 200 images (2 batches)", log_likelihood, test[:200], 1000)]
    sections = []
    with tempfile.TemporaryDirectory() as folder:
        for title, estimator, x, num_samples in workloads:
            times = interleave(cases(estimator, model, guide, x, num_samples, Path(folder)), rounds=rounds)
            sections.append(f"### {title}\n\n{ratio_table(times, 'plain')}\n")
    report = kernel_report()
    text = (f"# Resumable evaluation: the cost of `resume_file` (benchmarks/resume.py)\n\n"
            f"CPU: {report['cpu']}; torch {report['torch']}; {args.threads} threads; {platform.python_version()}; "
            f"{rounds} rounds, interleaved{' (quick)' if args.quick else ''}; the file's write interval "
            f"{resume_module.SAVE_EVERY_SECONDS:g} s.\n\n" + "\n".join(sections))
    Path(args.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
