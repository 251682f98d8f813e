"""Network adaptation by differentiable architecture search (DESIGN §1.3; paper Section 2.2).

- :mod:`space` — search spaces (``register_search_spaces``): depths and candidate ops;
- :mod:`supernet` — the super network: every searched layer a mixed op (Eq. 3) whose candidates
  are remapped from the base network (Section 2.1);
- :mod:`cost_table` — the per-(layer, op) cost table and the expected cost of α;
- :mod:`darts` — the first-order DARTS strategy (``register_strategies``): every candidate runs;
- :mod:`sampled` — the path-sampling strategy (straight-through Gumbel-softmax, GDAS-style): one
  sampled candidate per layer runs, so a step costs about one network;
- :mod:`loop` — the search run (data halves, checkpoints, resume, DDP, logs);
- :mod:`derive` — α → genotype.
"""
