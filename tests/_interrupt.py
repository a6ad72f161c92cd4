"""A ``CREAMLocalizer.fit`` interrupted at a chosen training step (Ctrl-C), for resume tests."""

from __future__ import annotations

from typing import Any

import pytest

from skcream import CREAMLocalizer


def fit_interrupted_at(step: int, params: dict[str, Any], ds: Any, monkeypatch) -> None:
    """Run ``CREAMLocalizer(**params).fit(ds)`` and raise ``KeyboardInterrupt`` at training
    step ``step`` (1-based, counted over all epochs), before that step's context update;
    checks that the fit stopped there and puts the real step back."""
    from skcream.estimators.localizer import _training

    real_call = _training._ContextHook.__call__
    steps = []

    def interrupt(self, accelerator, batch, outputs):
        steps.append(1)
        if len(steps) == step:
            raise KeyboardInterrupt
        real_call(self, accelerator, batch, outputs)

    monkeypatch.setattr(_training._ContextHook, "__call__", interrupt)
    with pytest.raises(KeyboardInterrupt):
        CREAMLocalizer(**params).fit(ds)
    monkeypatch.setattr(_training._ContextHook, "__call__", real_call)
