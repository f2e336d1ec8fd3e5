"""pyro_air.evaluate.summary: the row's columns and the work a command's one bar counts for them."""
import torch

from pyro_air.support.progress import JobProgress
from pyro_air.evaluate.summary import planned_work, summarize
from pyro_air.guides import ExactPosteriorGuide


def test_one_job_bar_counts_every_column_and_ends_at_its_total(linear_gaussian):
    """Inside a command's JobProgress the evaluators advance it batch by batch, by the model evaluations
    ``planned_work`` counts per datapoint, so the bar ends exactly at its total (and its ETA is the job's)."""
    model, x = linear_gaussian
    guide = ExactPosteriorGuide(model)
    columns = dict(iw_svi_steps=2, iw_svi_k_train=3, amortization_gap_steps=2, upper_bound_method="cubo")
    total = len(x) * planned_work(20, **columns)
    assert planned_work(20, **columns) == 20 + 1 + (2 * 3 + 20) + (2 * 10 + 2 * 100) + 20
    torch.manual_seed(0)
    with JobProgress(total, disable=True) as job:
        row = summarize(model, guide, x, num_samples=20, progress=True, **columns)
    assert job.done == total
    assert {"nll", "neg_elbo", "nll_iw_svi", "amortization_gap", "neg_upper_bound"} <= set(row)
