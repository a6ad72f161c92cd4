"""DataLoader defaults: "auto" worker count from the CPU affinity, pinned memory on CUDA."""

from __future__ import annotations

import os

import pytest
import torch

from skcream import CREAMLocalizer
from skcream.data import loading
from skcream.data.loading import auto_num_workers, pin_memory, resolve_num_workers


@pytest.fixture
def cpus(monkeypatch):
    def set_cpus(n):
        monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(n)), raising=False)
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    return set_cpus


def test_auto_workers_follow_the_affinity_mask(cpus, monkeypatch):
    cpus(8)
    assert loading.available_cpus() == 8
    assert auto_num_workers(10_000) == 7 and auto_num_workers(None) == 7
    assert auto_num_workers(loading.AUTO_MIN_ITEMS - 1) == 0  # small inputs: no workers
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")  # two launcher processes share the CPUs
    assert auto_num_workers(10_000) == 3
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "1")
    cpus(64)
    assert auto_num_workers(10_000) == 8  # capped
    cpus(1)
    assert auto_num_workers(10_000) == 0


def test_explicit_values_and_errors(cpus):
    cpus(8)
    assert resolve_num_workers(0, 10_000) == 0 and resolve_num_workers(3, 5) == 3
    assert resolve_num_workers(None, 10_000) == 7
    with pytest.raises(ValueError, match="num_workers"):
        resolve_num_workers(-1, 10)
    with pytest.raises(TypeError, match="num_workers"):
        resolve_num_workers(1.5, 10)


def test_pinned_memory_only_for_cuda():
    assert pin_memory(torch.device("cuda", 0)) and pin_memory("cuda")
    assert not pin_memory(torch.device("cpu")) and not pin_memory("mps")


def test_estimator_default_is_auto():
    assert CREAMLocalizer().get_params()["num_workers"] is None
    with pytest.raises(ValueError, match="num_workers"):
        CREAMLocalizer(num_workers=-2).fit([])
