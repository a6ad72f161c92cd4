"""Shared test configuration."""

import os

import pytest

# Never reach for a model hub from the tests: everything they load is local.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

SHARED = os.path.join(os.path.dirname(__file__), "..", "..", "shared")


@pytest.fixture(scope="session")
def shared_dir():
    """Path of the read-only ``../shared`` folder beside the repository."""
    path = os.path.abspath(SHARED)
    if not os.path.isdir(path):
        pytest.skip("../shared is not beside the repository")
    return path
