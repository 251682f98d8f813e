"""The selection stage between search and training (DESIGN §1.6, "Selection that wins"): a pool of candidates under
the target — the obvious baselines, the search's network, solutions of the exact constrained choice on a
remap-aware score — narrowed by successive halving of short trainings on held-out training images."""
