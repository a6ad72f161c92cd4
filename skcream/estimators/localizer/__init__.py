"""``CREAMLocalizer``: end-to-end CREAM (CVPR 2022) as a scikit-learn estimator.

Everything the estimator does lives in this package, one module per concern, the way
scikit-learn keeps an estimator with its private helpers (``sklearn.linear_model._logistic``).
The public names are re-exported here; import them from ``skcream`` or from this package,
never from the private modules.

============================ ===============================================================
module                       what it holds
============================ ===============================================================
:mod:`._estimator`           the class: parameters, ``fit``, ``predict`` / ``localize`` /
                             ``transform``, ``score`` / ``evaluate`` / ``threshold_curve``,
                             ``report``, ``save`` / ``load``; the scorers
:mod:`._validation`          parameter validation (what ``fit`` and inference check, which
                             parameters are part of the training cache key)
:mod:`._training`            ``fit``'s work: one call of :func:`skcream.training.train` with
                             the context-embedding hook, the ``memory=`` cache, validation data
:mod:`._inference`           batched forward passes and class maps (CAM or CREAM's EM), the
                             protocol frame of maps and boxes; no estimator state
:mod:`._fitted_state`        the fitted state as ``(meta, tensors)``: save / load, pickling,
                             the cache entry, the schema check before a network is built
============================ ===============================================================

Imports only go downwards: ``_estimator`` uses the four others; ``_training`` uses
``_fitted_state``, ``_validation`` and ``_inference`` (the validation score);
``_inference``, ``_fitted_state`` and ``_validation`` use none of this package (``tests/test_import_graph.py`` keeps the whole of skcream free of
import cycles). Estimator-independent plumbing shared with the other estimators is in
``skcream.estimators._common``, ``_inputs``, ``_cache``, ``_saved_schema`` and
``_boxes_target``.
"""

from skcream.estimators.localizer._estimator import (
    DEFAULT_BOX_THRESHOLD,
    LOCALIZER_METRICS,
    PROTOCOL_SIZE,
    SCORERS,
    CREAMLocalizer,
    DatasetView,
    make_localizer_scorer,
)

__all__ = [
    "CREAMLocalizer",
    "DEFAULT_BOX_THRESHOLD",
    "DatasetView",
    "LOCALIZER_METRICS",
    "PROTOCOL_SIZE",
    "SCORERS",
    "make_localizer_scorer",
]
