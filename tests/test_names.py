"""pyro_air.cli.names: the parser's lists equal the registries and constants they stand for."""
from pyro_air import data, guides, infer, runs
from pyro_air.cli import names


def test_the_parser_names_equal_the_registries():
    assert list(names.DATASETS) == [n for n in data.DATASETS.names() if n != "file"]
    assert list(names.GUIDES) == guides.GUIDES.names()
    assert list(names.OBJECTIVES) == infer.OBJECTIVES.names()
    assert list(names.LIKELIHOODS) == list(runs.LIKELIHOOD_MODELS)
    assert tuple(names.NETS) == tuple(runs.NETS)
    assert tuple(names.SPLITS) == tuple(data.SPLITS)
    assert names.QUICKSTART_EPOCHS == runs.QUICKSTART_EPOCHS
