"""Federated training on Flower: clients are devices with their own data (see run.federate)."""
