"""Federated training on Flower: clients are devices with their own data (see run.federate).

Flower reads its telemetry switch, and Ray its usage-stats switch, when first
imported: both are turned off here, before any module of this package imports them.
"""

import os

NO_TELEMETRY = {"FLWR_TELEMETRY_ENABLED": "0", "RAY_USAGE_STATS_ENABLED": "0"}
os.environ.update(NO_TELEMETRY)
