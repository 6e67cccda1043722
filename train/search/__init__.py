"""train/search/: neural architecture search under the deploy target's flash, RAM and latency budgets (a stage before training)."""
