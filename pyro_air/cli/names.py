"""The names the ``pyro-air`` parser lists in its help and choices, spelled out here so that parsing
(``--help``, an argument error, ``zoo list``) needs neither torch nor Pyro.

Each list equals the registry or constant it mirrors (``tests/test_names.py`` holds them equal):
``pyro_air.data.DATASETS`` (less "file", which ``--data PATH`` names), ``pyro_air.guides.GUIDES``,
``pyro_air.infer.OBJECTIVES``, ``pyro_air.runs.LIKELIHOOD_MODELS`` / ``NETS`` / ``QUICKSTART_EPOCHS``
and ``pyro_air.data.SPLITS``. A name registered at run time (your own guide) is still built by the
registry; only the help text does not list it.
"""
DATASETS = ("caltech101", "mnist", "mnist-amat", "omniglot")
GUIDES = ("consistency", "conv-gaussian", "denoising", "denoising-weightnorm", "gaussian", "gaussian-large",
          "hierarchical", "iaf", "semi-amortized", "spectral-norm", "weightnorm")
OBJECTIVES = ("avo", "ciwae", "consistency", "cubo", "elbo", "free-bits", "infovae", "iwae", "kl-warmup", "miwae",
              "piwae", "renyi")
LIKELIHOODS = ("bernoulli", "continuous-bernoulli", "gaussian")
NETS = ("mlp", "conv")
SPLITS = ("train", "valid", "test")
QUICKSTART_EPOCHS = 3
