"""Toy problems of the papers the zoo reproduces, as importable functions: what the tutorials and
the scripts in ``experiments/`` share (the scripts add command lines and result files).

- ``avo_energies``: non-amortized HVI on 2-D toy energies, HVI-ELBO vs HVI-AVO (AVO, Huang et al.
  2018, sections 5.2-5.3);
- ``infovae_two_point``: InfoVAE's Proposition 1 on the data set {-1, 1} (Zhao et al. 2019, Figure 1);
- ``infovae_variance``: log det Cov[q(z)] against the training-set size on MNIST (Figures 2, 3, 5).

Layer: beside ``pyro_air.runs`` (it trains with ``pyro_air.train``); nothing below imports it.
"""
