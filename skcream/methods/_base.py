"""The contract between a WSOL method and the method-agnostic training loop and CREAM.

A method (one module per method in this package) changes training in at most three ways
(see ``ARCHITECTURE.md``, "WSOL methods and CREAM as a plug-in"):

* the **input** of a training step (HaS hides grid cells, CutMix mixes images and labels):
  :meth:`WSOLMethod.forward`;
* the **network** (ACoL's second branch, SPG's auxiliary maps, ADL's layers inside the
  backbone) and the backbone trunk it sits on (:attr:`WSOLMethod.trunk`, wsolevaluation's
  ``architecture_type``): :meth:`WSOLMethod.build` (timm name -> network), which builds the
  trunk and calls :meth:`WSOLMethod.build_network`;
* the **loss** (ACoL's two cross-entropies, SPG's self-produced guidance, CutMix's label
  mixing): :meth:`WSOLMethod.loss`.

Every network a method builds follows one interface, which is all that the training loop,
the context update and the EM re-activation see:

* ``model(x) -> (logits (B,C), features (B,d,h,w), ...)``: the backbone's feature map is
  ``[1]`` (what the estimator caches); extra outputs only appear in the training forward;
* ``model.readout(features, labels) -> (cream_features (B,d',h,w), maps (B,h,w))``: the
  method's own class map of the given classes (raw, not normalised) and the feature space in
  which CREAM learns its context embeddings (Eq. 3-4, during training) and runs its EM
  (Eq. 7-9, at inference). ``model.readout_dim`` is d'.

So CREAM is the same code for every method: the context update calls ``readout`` on the
training forward's features with the true labels, the EM re-activates the ``readout`` map.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import torch
from torch import nn

from skcream._checks import as_int, as_real

__all__ = ["ParamSpec", "WSOLMethod"]


class ParamSpec:
    """One method hyper-parameter: default, type and closed interval (or choices for str)."""

    def __init__(
        self, default: Any, kind: type, low: float = 0.0, high: float | None = None,
        choices: tuple[str, ...] = (),
    ) -> None:
        self.default, self.kind, self.low, self.high = default, kind, low, high
        self.choices = choices

    def check(self, name: str, value: Any) -> Any:
        """Return ``value`` as ``kind``; raise TypeError/ValueError naming ``method_params[name]``."""
        where = f"method_params[{name!r}]"
        if self.kind is str:
            if value not in self.choices:
                raise ValueError(f"{where} must be one of {self.choices}, got {value!r}")
            return str(value)
        if self.kind is int:
            return as_int(value, where, low=int(self.low),
                          high=None if self.high is None else int(self.high))
        return as_real(value, where, low=self.low, high=self.high)


class WSOLMethod:
    """A WSOL training method: CAM itself (this base class) or a subclass.

    Parameters
    ----------
    **params
        The method's hyper-parameters (:attr:`PARAMS`), already validated by
        :func:`skcream.methods.get_method`; missing ones take their default.

    Attributes
    ----------
    name : str
        The value of ``CREAMLocalizer(method=...)``.
    PARAMS : dict of str to ParamSpec
        Hyper-parameters with the defaults of wsolevaluation's ``config.py``.
    params : dict
        The resolved values.
    """

    name: ClassVar[str] = "cam"
    PARAMS: ClassVar[dict[str, ParamSpec]] = {}

    def __init__(self, **params: Any) -> None:
        self.params = {k: spec.default for k, spec in self.PARAMS.items()}
        self.params.update(params)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params.items())
        return f"{type(self).__name__}({args})"

    @property
    def trunk(self) -> str:
        """The backbone trunk of this method's network (``build_backbone(trunk=...)``):
        wsolevaluation's ``architecture_type``, ``"cam"`` for CAM, HaS and CutMix."""
        return "cam"

    def build(
        self,
        backbone: str,
        pretrained: Any = False,
        *,
        n_classes: int,
        feature_stage: int | None = None,
        large_feature_map: bool = False,
    ) -> nn.Module:
        """The untrained network of this method on a timm backbone, its trunk included.

        Every path that builds a method network (fitting, loading a saved model, the
        comparison benchmark) goes through here, so the trunk always matches the method.

        Parameters
        ----------
        backbone : str
            A timm model name (see :func:`skcream.backbones.build_backbone`).
        pretrained : bool or str or PathLike, default=False
        n_classes : int
        feature_stage : int, optional
        large_feature_map : bool, default=False

        Returns
        -------
        nn.Module
            ``model(x) -> (logits, features, ...)`` with ``model.backbone`` the
            :class:`~skcream.backbones.FeatureBackbone`.
        """
        from skcream.backbones import build_backbone

        trunk = build_backbone(backbone, pretrained, feature_stage=feature_stage,
                               large_feature_map=large_feature_map, trunk=self.trunk)
        return self.build_network(trunk, n_classes)

    def check_trunk(self, backbone: nn.Module) -> None:
        """Raise ValueError when ``backbone``'s trunk is not this method's (different layers,
        :func:`skcream.backbones.trunk_layers`; hand-made backbones pass)."""
        from skcream.backbones import trunk_layers

        built_for = getattr(backbone, "trunk", self.trunk)
        family = getattr(backbone, "family", "generic")
        if trunk_layers(family, built_for) != trunk_layers(family, self.trunk):
            raise ValueError(
                f"backbone: built with trunk={built_for!r}, but method {self.name!r} "
                f"({self!r}) needs trunk={self.trunk!r}; use build_backbone(..., "
                f"trunk={self.trunk!r}) or {type(self).__name__}.build(...)"
            )

    # ------------------------------------------------------------------ hooks
    def build_network(self, backbone: nn.Module, n_classes: int) -> nn.Module:
        """The network trained by this method (default: CAM's GAP + linear head)."""
        from skcream.model import CAMNet

        self.check_trunk(backbone)
        return CAMNet(backbone, n_classes)

    def forward(self, model: nn.Module, batch: Mapping[str, torch.Tensor]) -> Any:
        """One training forward: ``model(batch["image"])`` (methods may change the input)."""
        return model(batch["image"])

    def loss(self, outputs: Any, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Training loss of :meth:`forward`'s outputs (default: cross-entropy of ``outputs[0]``)."""
        return nn.functional.cross_entropy(outputs[0].float(), batch["label"])
