"""Empty ray.address starts a private Ray even when another one runs on the machine."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator

import pytest
from ray.cluster_utils import Cluster

# What run_training.py does with ray.address, in a fresh process; prints the GCS it joined.
JOIN = """
import sys, ray
from evotrader.config import RayConfig
from evotrader.training.pipeline import start_ray
start_ray(RayConfig(address=sys.argv[1], num_cpus=1))
print(ray.get_runtime_context().gcs_address)
"""


@pytest.fixture(scope="module")
def other_ray() -> Iterator[str]:
    """Another Ray instance on this machine, as a user's own or another run's would be."""
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    try:
        yield cluster.address
    finally:
        cluster.shutdown()


def _gcs_port(address: str, other: str) -> str:
    """The GCS port a run with ``ray.address=address`` joins, RAY_ADDRESS naming ``other``."""
    done = subprocess.run(
        [sys.executable, "-c", JOIN, address],
        env=os.environ | {"RAY_ADDRESS": other},
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout.strip().splitlines()[-1].rpartition(":")[2]


def test_an_empty_address_never_joins_another_instance(other_ray: str) -> None:
    assert _gcs_port("", other_ray) != other_ray.rpartition(":")[2]


def test_auto_joins_the_cluster_ray_address_names(other_ray: str) -> None:
    assert _gcs_port("auto", other_ray) == other_ray.rpartition(":")[2]
