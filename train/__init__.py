"""train/: offline data sets, the model zoo and training. Public surface re-exported here."""
