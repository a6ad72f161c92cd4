"""``CREAMReactivation``: CREAM as a scikit-learn transformer (feature maps -> re-activation maps).

``fit(F, y)`` learns what inference needs from frozen feature maps ``F``
``(n, d, h, w)``: the CAM classifier (a multinomial ``LogisticRegression`` on
the global-average-pooled features, unless ``classifier_weights`` is given)
and, with ``init="learned"``, the class context embeddings of paper Eq. 3-4,
accumulated by the momentum rule over the training maps in a fixed, seeded
order. ``transform(F)`` returns the maps ``(n, h, w)`` in [0, 1] of the
predicted class, ``localize(F, labels)`` those of given classes (GT-known).

With ``init="image"`` (post-hoc re-activation, beyond the paper) no embedding is
learned: each image's own CAM-thresholded foreground / background means start
the EM (:func:`skcream.reactivation.reactivate_map`). Combined with
``classifier_weights`` (any pretrained linear head), ``fit(F)`` needs no label.
``cam=`` chooses the class map the EM starts from (:mod:`skcream.map_sources`: CAM by
default, or Grad-CAM, Grad-CAM++, XGrad-CAM, LayerCAM, EigenCAM of the last feature layer).

A fitted ``CREAMLocalizer``'s read-out. :meth:`CREAMReactivation.from_localizer`
carries the fine-tuned head, the learned context tables and the inference
parameters of a localizer, so that with ``TimmFeatures.from_localizer`` the
paper's trained model runs as a feature-map pipeline (equal maps, tested), and
``transform`` works on feature maps the user computed. The head and tables are
parameters (``classifier_weights``, ``classifier_bias``, ``context_embeddings``,
``classes``), not learned state: ``clone`` keeps them and ``fit`` on a clone learns
nothing, so a grid search over ``sigma`` / ``n_iter`` / ``kernel`` /
``fg_threshold`` needs neither the network nor retraining.

Scoring. ``score(F, y)`` is the GT-known MaxBoxAccV2 (percent) under the WSOL
protocol, and needs boxes: pass ``y = box_targets(labels, boxes, image_sizes)``,
a 1-D structured array that ``fit`` also accepts (it reads the labels), that
sklearn's splitters index like any ``y``, and that therefore goes through
``GridSearchCV(make_pipeline(TimmFeatures(...), CREAMReactivation()), grid)``
unchanged, with the default scoring.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.linear_model import LogisticRegression
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted

from skcream._checks import as_int, as_real
from skcream.threads import with_thread_rule

__all__ = ["CREAMReactivation", "box_targets", "box_targets_from", "PROTOCOL_SIZE"]

#: Side of the square maps the WSOL protocol evaluates (maps are upsampled to it).
PROTOCOL_SIZE = 224

_INITS = ("learned", "image")
_OUTPUTS = ("final", "calibrated", "cam", "posterior")
_KERNELS = ("dot", "cosine")


# --------------------------------------------------------------------------- targets
def box_targets(
    labels: Sequence[Any] | np.ndarray,
    boxes: Sequence[Any],
    image_sizes: Sequence[Any] | np.ndarray | None = None,
) -> np.ndarray:
    """Pack labels, ground-truth boxes and image sizes into one ``y`` for fit and score.

    Parameters
    ----------
    labels : array-like of shape (n,)
        Image-level class of each image.
    boxes : sequence of n array-likes of shape (k_i, 4)
        Ground-truth boxes ``x0, y0, x1, y1`` in each image's original pixels
        (``k_i >= 1``; the best-matching box counts).
    image_sizes : array-like of shape (n, 2) or None, default=None
        ``(W, H)`` of each original image; the boxes are scaled to the 224x224
        protocol maps as ``int(x * 224 / W)``. ``None`` means the boxes are
        already in 224x224 coordinates.

    Returns
    -------
    y : ndarray of shape (n,), structured
        Fields ``label``, ``boxes`` (object: a float64 (k_i,4) array each, already
        scaled to the 224x224 protocol frame) and ``size`` ((2,) int64, the
        original ``(W, H)``). The same layout :class:`skcream.metrics.WSOLScorer`
        reads, so ``make_wsol_scorer()`` works on it too.
    """
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise ValueError(f"labels must be 1-D (n,); got shape {labels.shape}")
    n = labels.shape[0]
    if len(boxes) != n:
        raise ValueError(f"boxes must hold one (k,4) array per label: {len(boxes)} != {n}")
    if image_sizes is None:
        sizes = np.full((n, 2), PROTOCOL_SIZE, dtype=np.int64)
    else:
        sizes = np.asarray(image_sizes)
        if sizes.shape != (n, 2):
            raise ValueError(f"image_sizes must have shape ({n}, 2) (W, H); got {sizes.shape}")
        if not np.all(np.isfinite(sizes)) or np.any(sizes < 1):
            i = int(np.flatnonzero(~(np.isfinite(sizes).all(1) & (sizes >= 1).all(1)))[0])
            raise ValueError(f"image_sizes[{i}] must be positive (W, H); got {sizes[i]}")
        sizes = sizes.astype(np.int64)
    packed = []
    for i, b in enumerate(boxes):
        b = np.asarray(b, dtype=np.float64)
        if b.ndim == 1 and b.shape == (4,):
            b = b[None]
        if b.ndim != 2 or b.shape[1] != 4 or b.shape[0] < 1:
            raise ValueError(f"boxes[{i}] must have shape (k, 4) with k >= 1; got {b.shape}")
        if not np.all(np.isfinite(b)):
            raise ValueError(f"boxes[{i}] contains NaN or inf")
        if np.any(b < 0) or np.any(b[:, 2] < b[:, 0]) or np.any(b[:, 3] < b[:, 1]):
            raise ValueError(
                f"boxes[{i}] must be x0,y0,x1,y1 with 0 <= x0 <= x1 and 0 <= y0 <= y1; got {b}"
            )
        packed.append(b)
    label_dtype = labels.dtype if labels.dtype != object else np.dtype(object)
    y = np.empty(n, dtype=[("label", label_dtype), ("boxes", object), ("size", np.int64, (2,))])
    y["label"] = labels
    y["size"] = sizes
    from skcream.data.transforms import EvalTransform

    scaler = EvalTransform(size=PROTOCOL_SIZE)
    for i, b in enumerate(packed):
        y["boxes"][i] = scaler.scale_boxes(b, int(sizes[i, 0]), int(sizes[i, 1]))
    return y


def box_targets_from(
    X: Any,
    y: Any = None,
    *,
    image_column: str = "image",
    label_column: str = "label",
    bbox_column: str = "bboxes",
) -> np.ndarray:
    """:func:`box_targets` read from a ``datasets.Dataset`` with the skcream schema.

    Parameters
    ----------
    X : datasets.Dataset (or anything ``ImageSource.from_input`` reads that has boxes)
        Needs the label and box columns; image sizes come from the file headers.
    y : array-like of shape (n,), optional
        Labels overriding the label column.
    image_column, label_column, bbox_column : str
        Column names.

    Returns
    -------
    y : ndarray of shape (n,), structured (see :func:`box_targets`)
    """
    from skcream.data.adapters import ImageSource

    source = ImageSource.from_input(
        X, y, image_column=image_column, label_column=label_column, bbox_column=bbox_column
    )
    if not source.has_boxes or source.labels is None:
        raise ValueError(
            f"X needs a label column {label_column!r} and a box column {bbox_column!r} "
            "to build box targets"
        )
    n = len(source)
    return box_targets(
        source.labels, [source.boxes(i) for i in range(n)], [source.size(i) for i in range(n)]
    )


def _is_box_targets(y: Any) -> bool:
    return isinstance(y, np.ndarray) and y.dtype.names is not None and "boxes" in y.dtype.names


def _py(value: Any) -> Any:
    """A numpy scalar as the plain Python value (for readable error messages)."""
    return value.item() if isinstance(value, np.generic) else value


def _labels_of(y: Any) -> np.ndarray | None:
    if y is None:
        return None
    if isinstance(y, np.ndarray) and y.dtype.names is not None:
        if "label" not in y.dtype.names:
            raise ValueError(
                f"a structured y needs a 'label' field (see box_targets); got {y.dtype.names}"
            )
        return np.asarray(y["label"])
    if isinstance(y, torch.Tensor):
        y = y.cpu().numpy()
    y = np.asarray(y)
    if y.ndim != 1:
        raise ValueError(f"y must be 1-D labels (n,) or box_targets(...); got shape {y.shape}")
    return y


# --------------------------------------------------------------------------- features
def _as_feature_tensor(F: Any, name: str = "F") -> torch.Tensor:
    """Validate feature maps and return a float32 CPU tensor (B, d, h, w)."""
    if isinstance(F, torch.Tensor):
        t = F.detach().cpu()
    else:
        try:
            arr = np.asarray(F)
        except Exception as exc:  # ragged lists and the like
            raise TypeError(f"{name} must be an array of shape (n, d, h, w)") from exc
        if arr.dtype == object or not (
            np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_
        ):
            raise TypeError(f"{name} must be a numeric array of shape (n, d, h, w); got dtype "
                            f"{arr.dtype}")
        t = torch.from_numpy(np.ascontiguousarray(arr))
    if t.ndim != 4:
        raise ValueError(
            f"{name} must be feature maps of shape (n, d, h, w) (4-D); got {t.ndim}-D shape "
            f"{tuple(t.shape)}"
        )
    if t.is_complex():
        raise TypeError(f"{name} must be real-valued; got dtype {t.dtype}")
    if t.shape[0] == 0:
        raise ValueError(f"{name} holds 0 samples; at least one is required")
    if min(t.shape[1:]) == 0:
        raise ValueError(f"{name} has an empty dimension: shape {tuple(t.shape)}")
    t = t.to(torch.float32)
    # A float64 sum of float32 values cannot overflow, so it is non-finite exactly when a
    # NaN or inf is present: one pass without materialising a boolean mask.
    finite = torch.isfinite(t.sum(dim=(1, 2, 3), dtype=torch.float64))
    if not bool(finite.all()):
        i = int((~finite).nonzero()[0, 0])
        raise ValueError(f"{name} contains NaN or inf (sample {i})")
    return t


def _gap(F: torch.Tensor) -> np.ndarray:
    """Global average pooling (n, d, h, w) -> (n, d) float64."""
    return F.mean(dim=(2, 3), dtype=torch.float64).numpy()


class CREAMReactivation(TransformerMixin, BaseEstimator):
    """Class re-activation maps (CREAM, paper Eq. 1-12) from frozen feature maps.

    Parameters
    ----------
    n_iter : int, default=2
        EM iterations T (Eq. 8-9); ``0`` gives plain CAM for every ``output``.
    sigma : float, default=8.0
        Scale of the kernel of Eq. 7.
    momentum : float, default=0.8
        lambda of Eq. 4 (``init="learned"`` only).
    fg_threshold : float, default=0.2
        delta / max(M_c) of Eq. 3 and of the calibration (Eq. 10).
    kernel : {"dot", "cosine"}, default="dot"
        Eq. 7 as written, or with L2-normalised features and centroids.
    init : {"learned", "image"}, default="learned"
        ``"learned"``: class context embeddings learned in ``fit`` start the EM
        (the paper). ``"image"``: post-hoc, each image's CAM-thresholded means.
    classifier_weights : array-like of shape (C, d) or None, default=None
        A given linear classifier (e.g. a pretrained ImageNet head). ``None``
        fits a ``LogisticRegression`` on GAP(F).
    classifier_bias : array-like of shape (C,) or None, default=None
        Bias of the given classifier; used for ``predict`` only (CAM, Eq. 1,
        ignores it).
    output : {"final", "calibrated", "cam", "posterior"}, default="final"
        What the maps are: Eq. 12, Eq. 11, the map of ``cam`` (CAM of the same
        classifier by default), or Z^fg. Every output is min-max normalised per map
        to [0, 1].
    C : float, default=1.0
        Inverse regularisation of the ``LogisticRegression`` head.
    max_iter : int, default=1000
        Iterations of the ``LogisticRegression`` solver.
    batch_size : int, default=256
        Feature maps processed at once (context update and inference).
    random_state : int, RandomState or None, default=None
        Seeds the embeddings' random initialisation, the order of the momentum
        updates and the logistic regression.
    context_embeddings : (fg, bg) pair of array-likes of shape (C, d), or None, default=None
        Given context embeddings V^fg, V^bg (e.g. a ``CREAMLocalizer``'s learned
        tables, or a ``skcream.context.ContextEmbeddings`` of your own training
        loop), rows aligned with ``classifier_weights`` (required with it). With
        ``init="learned"`` ``fit`` then learns nothing and needs no label; with
        ``init="image"`` they are not used (post-hoc starts from each image).
    classes : array-like of shape (C,) or None, default=None
        Labels of the rows of ``classifier_weights`` (sorted, unique); ``None`` is
        ``arange(C)``. Only with ``classifier_weights``.
    cam : {"cam", "gradcam", "gradcam++", "xgradcam", "layercam", "eigencam"}, default="cam"
        The class map the EM starts from (:mod:`skcream.map_sources`): its foreground
        (Eq. 3, for the context update and the post-hoc initial centroids), the
        calibration (Eq. 10) and the map term of Eq. 12; ``output="cam"`` returns it.
        The gradient CAMs are those of the last feature layer under the linear head on
        GAP(F), computed from F and ``coef_`` alone
        (:func:`skcream.map_sources.maps_from_features`); Score-CAM needs the images and
        the network (``skcream.post_hoc``).

    Attributes
    ----------
    classes_ : ndarray of shape (C,)
        Class labels (``arange(C)`` when ``classifier_weights`` is given).
    coef_ : ndarray of shape (C, d)
        The CAM weight table. For a binary ``LogisticRegression`` (one weight
        row ``w``) it is ``[-w, w]``: the CAM of class 0 is the negated map.
    intercept_ : ndarray of shape (C,)
    classifier_ : LogisticRegression or None
        The fitted head (``None`` with ``classifier_weights``).
    fg_context_, bg_context_ : ndarray of shape (C, d)
        Learned embeddings V^fg, V^bg (``init="learned"``); ``None`` otherwise.
    context_fitted_ : ndarray of shape (C,) bool
        Which classes had a training sample to learn their embeddings from.
    n_features_in_ : int
        Channel count d.
    feature_map_shape_ : tuple (h, w)
        Spatial size seen in fit (other sizes are accepted in transform).
    """

    def __init__(
        self,
        n_iter: int = 2,
        sigma: float = 8.0,
        momentum: float = 0.8,
        fg_threshold: float = 0.2,
        kernel: str = "dot",
        init: str = "learned",
        classifier_weights: Any = None,
        classifier_bias: Any = None,
        output: str = "final",
        C: float = 1.0,
        max_iter: int = 1000,
        batch_size: int = 256,
        random_state: Any = None,
        context_embeddings: Any = None,
        classes: Any = None,
        cam: str = "cam",
    ) -> None:
        self.n_iter = n_iter
        self.sigma = sigma
        self.momentum = momentum
        self.fg_threshold = fg_threshold
        self.kernel = kernel
        self.init = init
        self.classifier_weights = classifier_weights
        self.classifier_bias = classifier_bias
        self.output = output
        self.C = C
        self.max_iter = max_iter
        self.batch_size = batch_size
        self.random_state = random_state
        self.context_embeddings = context_embeddings
        self.classes = classes
        self.cam = cam

    @classmethod
    def from_localizer(cls, localizer: Any, **params: Any) -> CREAMReactivation:
        """The read-out of a fitted ``CREAMLocalizer`` as a fitted transformer over feature maps.

        Carries the localizer's fine-tuned linear head (``classifier_weights``,
        ``classifier_bias``), its learned context tables (``context_embeddings``), its
        ``classes_`` and its inference parameters (``n_iter``, ``sigma``, ``kernel``,
        ``fg_threshold``), so that ``transform(F)`` on the localizer's feature maps (e.g.
        ``TimmFeatures.from_localizer(loc).transform(X)``) equals ``loc.transform(X)``.
        The arrays are copies: later changes to ``localizer`` do not reach it.

        ``clone`` of the result keeps the head and the tables (they are parameters), and
        ``fit`` of a clone learns nothing from its data (it only checks the feature maps
        and labels), so ``GridSearchCV(CREAMReactivation.from_localizer(loc), grid)`` over
        the inference parameters scores the trained model without retraining.

        Parameters
        ----------
        localizer : CREAMLocalizer
            Fitted.
        **params
            Overrides of any other parameter (e.g. ``n_iter=0`` for the CAM of the same
            head, ``init="image"`` for post-hoc re-activation with the fine-tuned head).

        Returns
        -------
        CREAMReactivation
            Fitted, ``n_features_in_ = loc.feature_dim_``.
        """
        model = getattr(localizer, "model_", None)
        context = getattr(localizer, "context_", None)
        if model is None or context is None:
            raise ValueError(
                f"localizer must be a fitted CREAMLocalizer (call fit or CREAMLocalizer.load "
                f"first); got {type(localizer).__name__} without model_/context_"
            )

        from skcream.model import CAMNet

        if not isinstance(model, CAMNet) or getattr(localizer, "map_normalization", "minmax") != \
                "minmax" or getattr(localizer, "clamp_negative_weights", False):
            raise ValueError(
                "localizer: only a CAM-head network read out with map_normalization='minmax' "
                "and clamp_negative_weights=False is a linear head on its feature maps; got "
                f"method={getattr(localizer, 'method', 'cam')!r} (ACoL's fused two-branch map "
                "is not)"
            )

        def numpy(t: torch.Tensor) -> np.ndarray:
            return t.detach().cpu().numpy().copy()

        settings = dict(
            n_iter=localizer.n_iter, sigma=localizer.sigma, kernel=localizer.kernel,
            fg_threshold=localizer.fg_threshold, momentum=localizer.momentum, init="learned",
            classifier_weights=numpy(model.head.weight),
            classifier_bias=numpy(model.head.bias),
            context_embeddings=(numpy(context.fg), numpy(context.bg)),
            classes=np.asarray(localizer.classes_).copy(), batch_size=localizer.batch_size,
        )
        settings.update(params)
        est = cls(**settings)
        h, w = (int(v) for v in localizer.feature_shape_)
        # nothing is learned from these maps (head and tables are given): they only tell
        # fit the channel count and the map size, exactly as the localizer's maps would
        return est.fit(np.zeros((1, int(localizer.feature_dim_), h, w), dtype=np.float32))

    # ------------------------------------------------------------------ validation
    def _validate_params(self) -> None:
        as_int(self.n_iter, "n_iter", low=0)
        as_real(self.sigma, "sigma", low=0.0, low_open=True)
        for name in ("momentum", "fg_threshold"):
            as_real(getattr(self, name), name, low=0.0, high=1.0)
        if self.kernel not in _KERNELS:
            raise ValueError(f"kernel must be one of {_KERNELS}; got {self.kernel!r}")
        if self.init not in _INITS:
            raise ValueError(f"init must be one of {_INITS}; got {self.init!r}")
        if self.output not in _OUTPUTS:
            raise ValueError(f"output must be one of {_OUTPUTS}; got {self.output!r}")
        from skcream.map_sources import FEATURE_SOURCES, check_map_source

        check_map_source(self.cam, FEATURE_SOURCES, "Score-CAM masks the input image; "
                         "use skcream.post_hoc or skcream.map_sources.class_maps")
        as_real(self.C, "C", low=0.0, low_open=True)
        for name in ("max_iter", "batch_size"):
            as_int(getattr(self, name), name, low=1)
        for name in ("context_embeddings", "classes"):
            if getattr(self, name) is not None and self.classifier_weights is None:
                raise ValueError(
                    f"{name} describes the rows of a given classifier: it needs "
                    "classifier_weights (C, d) too"
                )

    def _given_weights(self, d: int) -> tuple[np.ndarray, np.ndarray]:
        W = self.classifier_weights
        if isinstance(W, torch.Tensor):
            W = W.detach().cpu().numpy()
        W = np.asarray(W)
        if W.ndim != 2 or W.shape[0] < 1 or not np.issubdtype(W.dtype, np.number):
            raise ValueError(
                f"classifier_weights must be a numeric (C, d) array; got shape {W.shape}, "
                f"dtype {W.dtype}"
            )
        if W.shape[1] != d:
            raise ValueError(
                f"classifier_weights has {W.shape[1]} columns but F has d={d} channels"
            )
        if not np.all(np.isfinite(W)):
            raise ValueError("classifier_weights contains NaN or inf")
        b = self.classifier_bias
        if b is None:
            b = np.zeros(W.shape[0])
        else:
            if isinstance(b, torch.Tensor):
                b = b.detach().cpu().numpy()
            b = np.asarray(b, dtype=np.float64)
            if b.shape != (W.shape[0],):
                raise ValueError(
                    f"classifier_bias must have shape ({W.shape[0]},); got {b.shape}"
                )
            if not np.all(np.isfinite(b)):
                raise ValueError("classifier_bias contains NaN or inf")
        return W.astype(np.float64), b.astype(np.float64)

    def _given_classes(self, n_classes: int) -> np.ndarray:
        classes = np.asarray(self.classes)
        if classes.ndim != 1 or classes.shape[0] != n_classes:
            raise ValueError(
                f"classes must be 1-D with one label per row of classifier_weights "
                f"({n_classes}); got shape {classes.shape}"
            )
        try:
            ordered = np.unique(classes)
        except TypeError as exc:
            raise ValueError("classes must be mutually comparable labels") from exc
        if ordered.shape != classes.shape or not np.all(ordered == classes):
            raise ValueError(
                f"classes must be sorted and unique (as classes_ of a fitted estimator); "
                f"got {classes[:10].tolist()}"
            )
        return classes

    def _given_context(self, n_classes: int, d: int) -> tuple[np.ndarray, np.ndarray]:
        pair = self.context_embeddings
        if not isinstance(pair, (tuple, list)) or len(pair) != 2:
            raise ValueError(
                "context_embeddings must be a pair (fg, bg) of (C, d) arrays; "
                f"got {type(pair).__name__}"
            )
        out = []
        for name, table in zip(("fg", "bg"), pair):
            if isinstance(table, torch.Tensor):
                table = table.detach().cpu().numpy()
            arr = np.asarray(table)
            if arr.shape != (n_classes, d) or not np.issubdtype(arr.dtype, np.number):
                raise ValueError(
                    f"context_embeddings {name} must be a numeric ({n_classes}, {d}) array "
                    f"(classes x channels of classifier_weights); got shape {arr.shape}, "
                    f"dtype {arr.dtype}"
                )
            if not np.all(np.isfinite(arr)):
                raise ValueError(f"context_embeddings {name} contains NaN or inf")
            out.append(arr.astype(np.float64))
        return out[0], out[1]

    def _check_F(self, F: Any) -> torch.Tensor:
        t = _as_feature_tensor(F)
        if t.shape[1] != self.n_features_in_:
            raise ValueError(
                f"F has {t.shape[1]} channels, but CREAMReactivation was fitted on "
                f"{self.n_features_in_} channels (F must be (n, {self.n_features_in_}, h, w))"
            )
        return t

    def _encode(self, labels: Any, name: str = "labels") -> np.ndarray:
        """Map class labels to row indices of ``coef_``; unseen labels raise."""
        labels = _labels_of(labels)
        try:
            idx = np.searchsorted(self.classes_, labels)
        except TypeError as exc:
            raise ValueError(
                f"{name} of dtype {labels.dtype} cannot be compared with classes_ of dtype "
                f"{self.classes_.dtype}"
            ) from exc
        idx = np.clip(idx, 0, len(self.classes_) - 1)
        bad = self.classes_[idx] != labels
        if np.any(bad):
            i = int(np.flatnonzero(bad)[0])
            raise ValueError(
                f"{name}[{i}] = {_py(labels[i])!r} is not a class seen in fit "
                f"(classes_ has {len(self.classes_)} classes: "
                f"{self.classes_[:10].tolist()}{' ...' if len(self.classes_) > 10 else ''})"
            )
        return idx.astype(np.int64)

    # ------------------------------------------------------------------ fit
    @with_thread_rule
    def fit(self, F: Any, y: Any = None) -> CREAMReactivation:
        """Learn the CAM classifier (unless given) and the context embeddings.

        Parameters
        ----------
        F : ndarray or Tensor of shape (n, d, h, w)
            Training feature maps (e.g. ``TimmFeatures().fit_transform(images)``).
        y : array-like of shape (n,), box_targets(...), or None
            Class labels. May be ``None`` only with ``classifier_weights`` and
            ``init="image"`` (post-hoc: nothing is learned from labels). With
            ``classifier_weights``, labels are row indices ``0..C-1``.

        Returns
        -------
        self : CREAMReactivation
        """
        self._validate_params()
        Ft = _as_feature_tensor(F)
        n, d, h, w = Ft.shape
        labels = _labels_of(y)
        if labels is not None and labels.shape[0] != n:
            raise ValueError(f"y has {labels.shape[0]} labels but F has {n} samples")
        if labels is not None and labels.dtype.kind == "f" and not np.all(np.isfinite(labels)):
            raise ValueError("y contains NaN or inf")
        rng = check_random_state(self.random_state)

        if self.classifier_weights is not None:
            W, b = self._given_weights(d)
            self.classifier_ = None
            if self.classes is not None:
                self.classes_ = self._given_classes(W.shape[0])
                if labels is not None:
                    self._encode(labels, "y")  # every label must be one of the classes
            else:
                self.classes_ = np.arange(W.shape[0])
            if self.classes is None and labels is not None and (
                labels.dtype.kind not in "iu"
                or np.any(labels < 0) or np.any(labels >= W.shape[0])
            ):
                bad = ~np.isin(labels, self.classes_)
                i = int(np.flatnonzero(bad)[0]) if bad.any() else 0
                raise ValueError(
                    f"with classifier_weights, y must hold integer row indices in "
                    f"[0, {W.shape[0]}); y[{i}] = {_py(labels[i])!r}"
                )
        else:
            if labels is None:
                raise ValueError(
                    "y is required to fit the LogisticRegression head; pass labels, or "
                    "classifier_weights=W (with init='image' for label-free post-hoc use)"
                )
            classes = np.unique(labels)
            if classes.shape[0] < 2:
                raise ValueError(
                    f"y must contain at least 2 classes to fit a classifier; got {classes.tolist()}"
                )
            clf = LogisticRegression(
                C=self.C, max_iter=self.max_iter,
                random_state=rng.randint(np.iinfo(np.int32).max),
            )
            clf.fit(_gap(Ft), labels)
            self.classes_ = clf.classes_
            self.classifier_ = clf
            if clf.coef_.shape[0] == 1:  # binary: one row w scores class 1 against class 0
                W = np.concatenate([-clf.coef_, clf.coef_], axis=0)
                b = np.concatenate([-clf.intercept_, clf.intercept_])
            else:
                W, b = clf.coef_, clf.intercept_
        self.coef_ = np.asarray(W, dtype=np.float64)
        self.intercept_ = np.asarray(b, dtype=np.float64)
        self.n_features_in_ = int(d)
        self.feature_map_shape_ = (int(h), int(w))

        if self.init == "learned" and self.context_embeddings is not None:
            fg, bg = self._given_context(*self.coef_.shape)
            self.fg_context_, self.bg_context_ = fg, bg
            self.context_fitted_ = np.ones(self.coef_.shape[0], dtype=bool)
        elif self.init == "learned":
            if labels is None:
                raise ValueError(
                    "init='learned' learns context embeddings from labelled maps: y is required "
                    "(use init='image' for post-hoc re-activation without labels)"
                )
            self._fit_context(Ft, self._encode(labels, "y"), rng)
        else:
            self.fg_context_ = None
            self.bg_context_ = None
            self.context_fitted_ = None
        return self

    def _fit_context(self, F: torch.Tensor, idx: np.ndarray, rng: np.random.RandomState) -> None:
        """Eq. 3-4 over the training maps in a seeded random order, in batches.

        The batched update of ``skcream.context`` equals the sample-by-sample
        momentum rule in the same order (tested there and in our tests).
        """
        from skcream.context import ContextEmbeddings
        from skcream.map_sources import maps_from_features

        n_classes, d = self.coef_.shape
        ctx = ContextEmbeddings(
            n_classes, d, momentum=float(self.momentum), fg_threshold=float(self.fg_threshold),
            random_state=int(rng.randint(np.iinfo(np.int32).max)),
        )
        order = torch.from_numpy(rng.permutation(F.shape[0]))
        weight = torch.from_numpy(self.coef_).float()
        labels = torch.from_numpy(idx)
        for start in range(0, F.shape[0], self.batch_size):
            sel = order[start:start + self.batch_size]
            feats, lab = F[sel], labels[sel]
            cams = maps_from_features(feats, weight, lab, self.cam)
            ctx.update(feats, cams, lab)
        self.fg_context_ = ctx.fg.detach().double().numpy().copy()
        self.bg_context_ = ctx.bg.detach().double().numpy().copy()
        fitted = np.zeros(n_classes, dtype=bool)
        fitted[np.unique(idx)] = True
        self.context_fitted_ = fitted

    # ------------------------------------------------------------------ inference
    @with_thread_rule
    def decision_function(self, F: Any) -> np.ndarray:
        """Class scores ``GAP(F) @ coef_.T + intercept_`` (n, C).

        For a binary ``LogisticRegression`` head this is ``[-s, s]`` with ``s``
        its decision function.
        """
        check_is_fitted(self)
        Ft = self._check_F(F)
        return _gap(Ft) @ self.coef_.T + self.intercept_

    @with_thread_rule
    def predict_proba(self, F: Any) -> np.ndarray:
        """Class probabilities (n, C) of the linear head.

        The fitted ``LogisticRegression``'s own probabilities, or the softmax of
        :meth:`decision_function` for given ``classifier_weights``.
        """
        check_is_fitted(self)
        Ft = self._check_F(F)
        if self.classifier_ is not None:
            return self.classifier_.predict_proba(_gap(Ft))
        s = _gap(Ft) @ self.coef_.T + self.intercept_
        s -= s.max(axis=1, keepdims=True)
        e = np.exp(s)
        return e / e.sum(axis=1, keepdims=True)

    @with_thread_rule
    def predict(self, F: Any) -> np.ndarray:
        """Predicted class labels (n,) (``classes_[argmax predict_proba]``)."""
        check_is_fitted(self)
        return self.classes_[np.argmax(self.predict_proba(F), axis=1)]

    def _maps(self, F: torch.Tensor, idx: np.ndarray) -> np.ndarray:
        from skcream.cam import normalize_maps
        from skcream.map_sources import maps_from_features
        from skcream.reactivation import reactivate, reactivate_map

        if self.init == "learned":
            missing = ~self.context_fitted_[idx]
            if np.any(missing):
                i = int(np.flatnonzero(missing)[0])
                raise ValueError(
                    f"class {_py(self.classes_[idx[i]])!r} (sample {i}) had no training sample in "
                    "fit, so it has no learned context embedding; fit with samples of it or "
                    "use init='image'"
                )
        weight = torch.from_numpy(self.coef_).float()
        keywords = dict(
            n_iter=int(self.n_iter), sigma=float(self.sigma), kernel=self.kernel,
            fg_threshold=float(self.fg_threshold), output=self.output,
        )
        out = np.empty((F.shape[0],) + tuple(F.shape[2:]), dtype=np.float32)
        for start in range(0, F.shape[0], self.batch_size):
            sl = slice(start, start + self.batch_size)
            feats = F[sl]
            lab = torch.from_numpy(idx[sl])
            cams = maps_from_features(feats, weight, lab, self.cam)
            if self.init == "learned":
                fg = torch.from_numpy(self.fg_context_[idx[sl]]).float()
                bg = torch.from_numpy(self.bg_context_[idx[sl]]).float()
                maps = reactivate(feats, cams, fg, bg, **keywords)
            else:
                maps = reactivate_map(feats, cams, **keywords)
            out[sl] = normalize_maps(maps).numpy()
        return out

    @with_thread_rule
    def transform(self, F: Any) -> np.ndarray:
        """Maps (n, h, w) in [0, 1] of each sample's predicted class.

        Parameters
        ----------
        F : ndarray or Tensor of shape (n, d, h, w)

        Returns
        -------
        maps : ndarray of shape (n, h, w), float32
            What ``output`` names, min-max normalised per map (a constant map
            becomes zeros). Not upsampled: see ``skcream.localize.protocol_maps``.
        """
        check_is_fitted(self)
        Ft = self._check_F(F)
        # argmax of the scores == argmax of predict_proba (softmax / sigmoid are monotone)
        idx = np.argmax(_gap(Ft) @ self.coef_.T + self.intercept_, axis=1)
        return self._maps(Ft, idx)

    @with_thread_rule
    def localize(self, F: Any, labels: Any) -> np.ndarray:
        """Maps (n, h, w) in [0, 1] for given classes (GT-known).

        Parameters
        ----------
        F : ndarray or Tensor of shape (n, d, h, w)
        labels : array-like of shape (n,) or box_targets(...)
            Classes from ``classes_``; an unseen label raises ``ValueError``.

        Returns
        -------
        maps : ndarray of shape (n, h, w), float32
        """
        check_is_fitted(self)
        Ft = self._check_F(F)
        lab = _labels_of(labels)
        if lab.shape[0] != Ft.shape[0]:
            raise ValueError(f"labels has {lab.shape[0]} entries but F has {Ft.shape[0]} samples")
        return self._maps(Ft, self._encode(lab))

    @with_thread_rule
    def score(self, F: Any, y: Any) -> float:
        """GT-known MaxBoxAccV2 (percent) of the maps under the WSOL protocol.

        The maps of the true classes are upsampled (bicubic) to 224x224 and
        min-max normalised; the boxes of ``y`` are already in that frame.

        Parameters
        ----------
        F : ndarray or Tensor of shape (n, d, h, w)
        y : box_targets(labels, boxes, image_sizes)
            Labels alone cannot be scored: localisation needs boxes.

        Returns
        -------
        score : float
        """
        if not _is_box_targets(y):
            raise TypeError(
                "score needs ground-truth boxes: pass y=box_targets(labels, boxes, image_sizes) "
                "(from skcream.estimators.feature_reactivation); plain labels carry no box"
            )
        from skcream.localize import protocol_maps
        from skcream.metrics import max_box_acc_v2

        maps = self.localize(F, y)
        maps224 = protocol_maps(maps, size=(PROTOCOL_SIZE, PROTOCOL_SIZE))
        return float(max_box_acc_v2(maps224, list(y["boxes"])))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        tags.target_tags.required = self.classifier_weights is None or (
            self.init == "learned" and self.context_embeddings is None
        )
        return tags
