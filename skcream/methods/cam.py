"""CAM (Zhou et al., CVPR 2016): GAP + linear classifier, trained with cross-entropy only.

The baseline of every other method: its network is :class:`skcream.model.CAMNet` and its
map the class activation map ``M_c = sum_k w_k^c F_k`` (Eq. 1). CREAM re-activates that map
in the backbone's feature space. All of it lives in :class:`~skcream.methods._base.WSOLMethod`.
"""

from __future__ import annotations

from skcream.methods._base import WSOLMethod

__all__ = ["CAM"]


class CAM(WSOLMethod):
    """Plain CAM training (no hyper-parameters)."""

    name = "cam"
    PARAMS = {}
