"""The cluster scenarios with real processes run with ``make cluster-test``, not ``make test``.

``make test`` keeps to its few minutes with the cluster's unit tests (leases
against the real NATS, hashing, codec, the API); the scenarios with a 3-node
NATS cluster, workers, writers and simulators -- kill -9 and pause (about a
minute), NATS node, writer kill and membership changes (minutes) -- have their
own target (``VF_CLUSTER_LONG=1``), which CI runs too (``.ci/run``).
"""

from __future__ import annotations

import os

import pytest

LONG = os.environ.get("VF_CLUSTER_LONG", "") == "1"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if LONG:
        return
    skip = pytest.mark.skip(reason="cluster scenario with real processes: make cluster-test")
    for item in items:
        if "cluster_long" in item.keywords:
            item.add_marker(skip)
