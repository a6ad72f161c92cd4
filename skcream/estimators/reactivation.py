"""Old path of :mod:`skcream.estimators.feature_reactivation`, kept for existing imports.

The transformer ``CREAMReactivation`` and its helpers moved to
:mod:`skcream.estimators.feature_reactivation`, so that the only module named
``reactivation`` is the math of paper Eq. 7-12 (:mod:`skcream.reactivation`). Import
``CREAMReactivation`` from ``skcream`` and the helpers from the new module.
"""

from skcream.estimators.feature_reactivation import (
    PROTOCOL_SIZE,
    CREAMReactivation,
    box_targets,
    box_targets_from,
)

__all__ = ["CREAMReactivation", "box_targets", "box_targets_from", "PROTOCOL_SIZE"]
