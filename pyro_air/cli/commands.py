"""What each ``pyro-air`` subcommand does (``pyro_air.cli.main`` parses and dispatches)."""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import torch

from pyro_air.cli.options import (
    TRAIN_ARGS_FILE,
    config_from_args,
    report_threads,
    resume_args,
    run_dir_of,
    spec_from_args,
    threads_of,
    train_options,
)
from pyro_air.cli.zoo_commands import diagnose_plan, full_evaluation_estimate, quick_evaluation
from pyro_air import zoo
from pyro_air.support import parallel as dist_utils
from pyro_air.support.progress import JobProgress
from pyro_air.core.seeds import seed_all, stream_seed
from pyro_air.core.validation import physical_memory
from pyro_air.evaluate import format_table, summarize
from pyro_air.cli.ais_options import check_ais_arguments, gap_plot_path, wants_ais
from pyro_air.evaluate.ais_report import ais_report
from pyro_air.evaluate.latent_metrics import format_latent_metrics
from pyro_air.runs import (
    build_run,
    evaluate_checkpoint,
    evaluation_split,
    load_split,
    quickstart_setup,
)
from pyro_air.train import check_inputs, check_run_dir, fit, stopping_summary
from pyro_air.train import run_dir as run_dirs
from pyro_air.train.signals import TrainingInterrupted


def cmd_train(args) -> int:
    """Check everything (options, run directory, model, data) before anything is written; then ``fit``
    claims the run directory (one writer), writes train_args.json and trains; a signal ends it with a
    checkpoint."""
    run_dir = run_dir_of(args)
    resume, overwrite = bool(args.resume), args.overwrite
    if resume and overwrite:
        raise ValueError("--resume continues a run and --overwrite moves it aside: give one of them")
    run_dirs.check_path(run_dir)
    if resume:
        args = resume_args(args, run_dir)
    spec, config = spec_from_args(args), config_from_args(args)
    config.validate()
    if args.distributed:  # fail before loading any data: no torchrun environment, batch not divisible
        dist_utils.setup(args.device)
        dist_utils.check_batch_divisible(args.batch_size, dist_utils.world_size())
    # fail before loading any data (fit checks again): the resumed checkpoint, or a directory not empty.
    # Under torchrun only the main process checks a new run's directory: it is the one that writes there
    # (a slower rank would see its first file), and its refusal stops every rank.
    epochs_before = 0
    if resume or not args.distributed or dist_utils.is_main_process():
        epochs_before = check_run_dir(run_dir, spec, config, resume=resume, overwrite=overwrite, empty=True,
                                      resume_hint=f"`pyro-air train --resume {run_dir}`")
    model, guide, objective = build_run(spec, seed=args.seed)
    train_x, valid_x = load_split(spec, "train"), load_split(spec, "valid")
    check_inputs(model, guide, train_x, valid_x, config)
    options = json.dumps(train_options(args), indent=1) + "\n"
    return _train(model, guide, objective, train_x, valid_x, config, run_dir, spec, resume, args, epochs_before,
                  overwrite, {TRAIN_ARGS_FILE: options})


def _train(model, guide, objective, train_x, valid_x, config, run_dir, spec, resume, args, epochs_before,
           overwrite, run_files) -> int:
    t0 = time.perf_counter()
    steps = len(train_x) // config.batch_size
    if dist_utils.is_main_process():
        report_threads(args, config.threads, config.progress)
    try:
        with JobProgress(config.epochs * steps, "train", disable=not config.progress or not dist_utils.is_main_process(),
                         initial=epochs_before * steps):
            result = fit(model, guide, objective, train_x, valid_x, config, run_dir=run_dir, spec=spec, resume=resume,
                         distributed=args.distributed, overwrite=overwrite, run_files=run_files)
    except TrainingInterrupted as stop:
        print(f"pyro-air: interrupted at epoch {stop.epoch} step {stop.step}; continue with: "
              f"pyro-air train --resume {run_dir}", file=sys.stderr)
        return stop.exit_code
    except KeyboardInterrupt:  # a second Ctrl-C: aborted at once, mid-step or mid-save
        saved = (run_dir / "checkpoint.pt").is_file()
        print("pyro-air: interrupted (a second signal aborts at once); " +
              (f"continue from the last checkpoint with: pyro-air train --resume {run_dir}" if saved else
               f"no checkpoint had been written yet: start again (pyro-air train ... --run-dir {run_dir} --overwrite)"),
              file=sys.stderr)
        return 130
    if not dist_utils.is_main_process():
        return 0
    epochs_done = len(result.history) - epochs_before
    if resume and epochs_done == 0:
        how = "early-stopped" if result.stopped_early else "finished"
        print(f"{run_dir} had already {how} at epoch {len(result.history)} of {config.epochs}; nothing to do. "
              f"Best validation IWAE-{config.valid_num_samples} {_fmt(result.best_valid)} at epoch {result.best_epoch}. "
              f"To train longer, start a new run (the number of epochs sets the learning-rate schedule)")
    else:
        print(f"trained {epochs_done} epochs in {time.perf_counter() - t0:.1f} s; "
              f"{stopping_summary(result, config.epochs, config.valid_num_samples)}")
    print(f"checkpoints: {run_dir / 'checkpoint.pt'} (last), {run_dir / 'best.pt'} (best); "
          f"metrics: {run_dir / 'metrics.jsonl'}")
    return 0


def disk_size(path: Path) -> str:
    """The size of the files under ``path``, e.g. "79.2 MB"."""
    total = sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file())
    return f"{total / 1e6:.1f} MB"


def _fmt(value) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def cmd_evaluate(args) -> int:
    # zoo:NAME without --num-samples: the manifest's quick check (pyro_air.cli.zoo_commands)
    check = quick_evaluation(args)
    if args.seed is None:
        args.seed = 0
    # Estimates draw per datapoint batch from (seed, batch); the columns that optimize per datapoint
    # (IW-SVI, amortization gap) and the latent metrics draw from the global streams: seed them too.
    seed_all(stream_seed(args.seed, "evaluation"))
    torch.set_num_threads(threads_of(args))  # issue 17: --threads (the process ends after the command)
    if args.max_points is not None and args.max_points < 1:
        raise ValueError(f"--max-points must be >= 1 (the first N points of each split), got {args.max_points}; "
                         "omit it to evaluate whole splits")
    if args.resume_dir is not None and args.distributed:
        raise ValueError("--resume-dir keeps one process's batches; drop --distributed or --resume-dir")
    check_ais_arguments(args, zoo.output_dir(args.checkpoint))  # issue 19 hook (pyro_air/cli/ais_options.py)
    if dist_utils.is_main_process():
        report_threads(args, torch.get_num_threads(), not args.no_progress)
    t0 = time.perf_counter()
    rows = evaluate_checkpoint(args.checkpoint, args.splits, args.num_samples, args.max_points, args.device,
                               progress=not args.no_progress, seed=args.seed, distributed=args.distributed,
                               iw_svi_steps=args.iw_svi_steps,
                               iw_svi_k_train=args.iw_svi_k_train, iw_svi_lr=args.iw_svi_lr,
                               amortization_gap_steps=args.amortization_gap_steps,
                               upper_bound_method=args.upper_bound,
                               with_latent_metrics=args.latent_metrics, loader=zoo.load_source,
                               resume_dir=args.resume_dir)
    if not dist_utils.is_main_process():
        return 0
    print(f"-log p(x) is IWAE-{args.num_samples}; gap = log p(x) - ELBO; mean ± standard error, nats")
    if args.iw_svi_steps:
        print(f"-IW-SVI: {args.iw_svi_steps} Adam steps on IWAE-{args.iw_svi_k_train} per datapoint, "
              f"scored with IWAE-{args.num_samples} (AIR Appendix C)")
    if args.amortization_gap_steps:
        print(f"amort. gap: ELBO of a per-datapoint Gaussian ({args.amortization_gap_steps} steps) - amortized ELBO")
    if args.upper_bound:
        bound = "CUBO_2" if args.upper_bound == "cubo" else "VR bound, alpha = -1"
        print(f"-upper bound: -{bound} with {args.num_samples} samples (<= -log p(x) once S is large enough)")
    print(format_table(rows))
    if check is not None:
        print(full_evaluation_estimate(args, time.perf_counter() - t0))
    if args.latent_metrics:
        print("\nlatent metrics (InfoVAE): MMD(q(z), p(z)), log det Cov[q(z)], active units, I_q(x; z) in nats")
        print(format_latent_metrics({label: row["latent"] for label, row in rows.items()}))
    if wants_ais(args):  # issue 19 hook: AIS / BDMC / gap decomposition (pyro_air/evaluate/ais_report.py)
        model, guide, spec = zoo.load_source(args.checkpoint, args.device)
        splits = {f"{s} (n={len(x)})": x for s in args.splits for x in [evaluation_split(spec, s, args.max_points)]}
        plot = gap_plot_path(args, zoo.output_dir(args.checkpoint)) if args.gaps else None
        print(ais_report(model, guide, splits, args, plot_path=plot))
    return 0


DIAGNOSE_BYTES_PER_DRAW = 16  # per (datapoint, draw): its float32 log-weight and latent dims 0 and 1, and a copy


def cmd_diagnose(args) -> int:
    import matplotlib
    matplotlib.use("Agg")  # files only; never open a window
    from pyro_air.diagnostics.psis import MIN_PSIS_SAMPLES
    from pyro_air.diagnostics.report import check_output_dir, khat_note, write_diagnostics

    # every option and the output folder are checked before anything is loaded or created
    if args.num_samples < MIN_PSIS_SAMPLES:
        raise ValueError(f"--num-samples must be >= {MIN_PSIS_SAMPLES} for a Pareto tail fit of k-hat, got "
                         f"{args.num_samples}; the default is 1000")
    if args.max_points < 1:
        raise ValueError(f"--max-points must be >= 1 (the first N points of the split), got {args.max_points}")
    memory, needed = physical_memory(), args.max_points * args.num_samples * DIAGNOSE_BYTES_PER_DRAW
    if memory is not None and needed > memory // 2:
        raise ValueError(f"--max-points {args.max_points} x --num-samples {args.num_samples} draws need about "
                         f"{needed / 1e9:.3g} GB (k-hat keeps every log-weight), more than half of this machine's "
                         f"{memory / 1e9:.3g} GB of memory; lower either (defaults: 1000 x 1000)")
    torch.set_num_threads(threads_of(args))  # --threads (the process ends after the command)
    run_dir = zoo.output_dir(args.checkpoint)  # a zoo model has no run directory: runs/zoo-NAME
    default_out = run_dir if zoo.zoo_name(args.checkpoint) is not None else run_dir / "diagnostics"
    check_output_dir(args.out or default_out)
    model, guide, spec = zoo.load_source(args.checkpoint, args.device)
    x = evaluation_split(spec, args.split, args.max_points)
    plan = diagnose_plan(args)
    if plan:
        print(plan)
    report_threads(args, torch.get_num_threads(), not args.no_progress)
    seed_all(stream_seed(args.seed, "diagnostics"))
    metrics = run_dir / "metrics.jsonl"
    report = write_diagnostics(model, guide, x, args.out or default_out, num_samples=args.num_samples,
                               metrics=metrics if metrics.exists() else None, label=f"{args.split} split",
                               progress=not args.no_progress)
    print(report.khat_table)
    bad = json.loads(Path(report.files["khat json"]).read_text())["summary"][-1]["fraction"]  # k >= 0.7
    print(khat_note(bad, getattr(model, "z_dim", 0), spec["guide"]["name"]))
    for name, file in report.files.items():
        print(f"{name}: {file}")
    return 0


def no_resume_hint(command: str, stop, what: str = "") -> str:
    """The line for an interrupted command that cannot resume (compare, quickstart): run it again."""
    return (f"pyro-air: {command} interrupted at {what}epoch {stop.epoch} step {stop.step}; `pyro-air {command}` "
            f"has no --resume: run the same command again with --overwrite (the partial runs are moved aside)")


def _fresh_run_dir(args, what: str) -> Path:
    """The run directory of a command that cannot resume: refused if it holds anything, unless
    --overwrite moves the old one aside. Reads only (``fit`` does the moving)."""
    check_run_dir(args.run_dir, overwrite=args.overwrite, empty=True, what=what)
    return Path(args.run_dir)


def cmd_quickstart(args) -> int:
    """Train the AIR MNIST VAE (784-500-500-50) at a small budget, evaluate, print the table; the run is
    ``pyro_air.runs.quickstart_setup``'s, as in tutorial 01."""
    run_dir = _fresh_run_dir(args, "quickstart run")
    spec, config = quickstart_setup(epochs=args.epochs, train_size=args.train_size, seed=args.seed,
                                    progress=not args.no_progress)
    threads = threads_of(args)
    torch.set_num_threads(threads)  # training and evaluation (the config keeps tutorial 01's threads=None)
    model, guide, objective = build_run(spec, seed=args.seed)
    train_x, valid_x = load_split(spec, "train"), load_split(spec, "valid")
    check_inputs(model, guide, train_x, valid_x, config)
    test_x = load_split(spec, "test")[: args.test_points]
    t0 = time.perf_counter()
    report_threads(args, threads, config.progress)
    with JobProgress(config.epochs * (len(train_x) // config.batch_size), "quickstart", disable=not config.progress):
        try:
            fit(model, guide, objective, train_x, valid_x, config, run_dir=run_dir, spec=spec, overwrite=args.overwrite)
        except TrainingInterrupted as stop:
            print(no_resume_hint("quickstart", stop), file=sys.stderr)
            return stop.exit_code
    print(f"trained on {len(train_x)} MNIST images for {args.epochs} epochs in {time.perf_counter() - t0:.0f} s")
    rows = {f"VAE test (n={len(test_x)})": summarize(model, guide, test_x, num_samples=args.num_samples,
                                                      progress=not args.no_progress,
                                                      seed=stream_seed(args.seed, "evaluation"))}
    print(f"-log p(x) is IWAE-{args.num_samples}; gap = log p(x) - ELBO; mean ± standard error, nats")
    print(format_table(rows))
    return 0


def cmd_compare(args) -> int:
    """VAE vs DVAE vs WNI-VAE (AIR Table 1) at a small budget, one table: ``pyro_air.compare.air``
    checks everything (hyperparameters, options, run folder, data) before the first model trains,
    then claims the folder, trains, evaluates and compares; the same command prints the same table."""
    from pyro_air.compare.air import AIR_COLUMNS, AirComparison

    comparison = AirComparison(
        epochs=args.epochs, train_size=args.train_size, sigma=args.sigma, alpha=args.alpha, H=args.H,
        num_particles=args.num_particles, z_dim=args.z_dim, hidden=args.hidden, valid_size=args.valid_size,
        test_points=args.test_points, num_samples=args.num_samples, seed=args.seed, run_dir=args.run_dir,
        checkpoint_every_epochs=args.checkpoint_every_epochs, overwrite=args.overwrite, threads=threads_of(args),
        progress=not args.no_progress)
    report_threads(args, comparison.config.threads, comparison.config.progress)
    try:
        result = comparison.run()
    except TrainingInterrupted as stop:
        print(no_resume_hint("compare", stop, f"{comparison.training} "), file=sys.stderr)
        return stop.exit_code
    bound = "ELBO" if args.num_particles == 1 else f"IWAE-{args.num_particles} bound"
    print(f"\ntest, first {result.test_points} images; nats, mean ± standard error\n"
          f"  -log p(x): IWAE-{args.num_samples} estimate; -ELBO column: -{bound}; gap = log p(x) - {bound}\n"
          "  Δ: paired difference on the same images (negative = better than VAE)")
    print(format_table(result.rows, columns=AIR_COLUMNS))
    for note in result.notes:
        print(note)
    print(f"\nruns (checkpoints, metrics.jsonl, best.pt): {result.run_dir}/ ({disk_size(result.run_dir)}); "
          f"evaluate one with: pyro-air evaluate {next(iter(result.runs.values()))}")
    return 0
