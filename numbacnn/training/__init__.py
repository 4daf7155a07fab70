"""Training runs: the Trainer and what it uses (evaluation, progress, the run log, run folders,
metrics) and the run configuration that builds them."""
