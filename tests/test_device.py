"""Fail-fast device validation: unknown or unavailable devices are refused before any work."""

from __future__ import annotations

import pytest
import torch

from skcream import CREAMLocalizer
from skcream._device import check_device
from skcream.cli import main
from skcream.estimators.features import TimmFeatures
from skcream.estimators.regressor import PseudoBoxRegressor


@pytest.fixture
def no_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)


@pytest.fixture
def two_gpus(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)


def test_auto_and_cpu_pass():
    assert check_device(None) is None and check_device("auto") is None
    assert check_device("cpu") == torch.device("cpu")
    assert check_device(torch.device("cpu")) == torch.device("cpu")


@pytest.mark.parametrize("name", ["gpu", "tpu", "CPU", "", "cuda:-1"])
def test_unknown_names(name):
    with pytest.raises(ValueError, match=r"^device: unknown device"):
        check_device(name)


@pytest.mark.parametrize("name", ["meta", "xla", "lazy"])
def test_unsupported_types(name):
    with pytest.raises(ValueError, match="not supported"):
        check_device(name, "--device")


def test_wrong_type():
    with pytest.raises(TypeError, match="device"):
        check_device(0)


@pytest.mark.parametrize("name", ["cuda", "cuda:0", "cuda:7", torch.device("cuda", 1)])
def test_cuda_without_cuda(no_cuda, name):
    with pytest.raises(ValueError, match="CUDA is not available"):
        check_device(name)


def test_cuda_index_beyond_count(two_gpus):
    assert check_device("cuda:1") == torch.device("cuda", 1)
    assert check_device("cuda") == torch.device("cuda")
    with pytest.raises(ValueError, match=r"'cuda:7' requested but this machine has 2 cuda"):
        check_device("cuda:7")


class _Untouchable:
    """Input whose reading fails the test: device errors must come first."""

    def __len__(self):
        raise AssertionError("data was read before the device was checked")

    def __getitem__(self, i):
        raise AssertionError("data was read before the device was checked")

    def __iter__(self):
        raise AssertionError("data was read before the device was checked")


@pytest.mark.parametrize("device", ["gpu", "cuda:7"])
def test_estimators_fail_before_reading_data(no_cuda, device):
    with pytest.raises(ValueError, match="^device: "):
        CREAMLocalizer(backbone="test_resnet", pretrained=False, device=device).fit(_Untouchable())
    with pytest.raises(ValueError, match="^device: "):
        PseudoBoxRegressor(backbone="test_resnet", pretrained=False, device=device).fit(
            _Untouchable())
    with pytest.raises(ValueError, match="^device: "):
        TimmFeatures("test_resnet", pretrained=False, device=device).fit()


@pytest.mark.parametrize("cmd", [["train", "--data", "synthetic:4", "--out", "OUT"],
                                 ["evaluate", "--model", "OUT", "--data", "synthetic:4"],
                                 ["demo", "--out", "OUT"]])
@pytest.mark.parametrize("device", ["gpu", "cuda:7"])
def test_cli_one_error_line(no_cuda, tmp_path, capsys, cmd, device):
    argv = [str(tmp_path / "o") if a == "OUT" else a for a in cmd] + ["--device", device]
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"skcream {cmd[0]}: error: argument --device: ")
    assert not (tmp_path / "o").exists()
