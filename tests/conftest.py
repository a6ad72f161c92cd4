"""Shared test configuration."""

import os

import pytest

# Never reach for a model hub from the tests: everything they load is local.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Under pytest-xdist every worker is a process of its own: one intra-op thread each keeps
# two workers from oversubscribing two cores (OpenMP threads spin while they wait).
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("MKL_NUM_THREADS", "1")

SHARED = os.path.join(os.path.dirname(__file__), "..", "..", "shared")


@pytest.fixture(scope="session", autouse=True)
def _one_torch_thread_for_the_session():
    """One intra-op thread before any module- or session-scoped fixture runs: pytest sets up
    wider-scoped fixtures first, so without this a module's shared fitted model trained on
    the default thread count while the test beside it trained on one (different float
    reduction order: ``pytest -n 0`` failed the bit-for-bit reproducibility tests)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """One intra-op thread per test, restored afterwards: the tests' models are tiny, and on a
    shared 2-core machine more threads oversubscribe the CPU (measured 4-40x slower)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def shared_dir():
    """Path of the read-only ``../shared`` folder beside the repository."""
    path = os.path.abspath(SHARED)
    if not os.path.isdir(path):
        pytest.skip("../shared is not beside the repository")
    return path
