"""The long cluster scenarios run with ``make cluster-test``, not ``make test``.

``make test`` runs the kill -9 and pause scenarios (about a minute of real
processes); the NATS-node, writer-kill and membership scenarios take minutes
more and have their own target (``VF_CLUSTER_LONG=1``), which CI runs
too (``.ci/run``).
"""

from __future__ import annotations

import os

import pytest

LONG = os.environ.get("VF_CLUSTER_LONG", "") == "1"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if LONG:
        return
    skip = pytest.mark.skip(reason="long cluster scenario: make cluster-test")
    for item in items:
        if "cluster_long" in item.keywords:
            item.add_marker(skip)
