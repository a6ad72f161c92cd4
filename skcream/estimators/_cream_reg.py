"""``CREAMReg`` (paper section 4.1, Fig. 3): CREAM_Base's class, a pseudo-box regressor's box.

:class:`CREAMReg` composes a :class:`~skcream.estimators.localizer.CREAMLocalizer`
(CREAM_Base: the class, and the pseudo boxes of the training set at 448x448) and a
:class:`~skcream.estimators.regressor.PseudoBoxRegressor` trained on those pseudo boxes
(the box at test time).

As released (Jazzcharles/CREAM ``inference.py``) the class comes from a classifier separate
from the regressor: here the fitted localizer's, on its own evaluation input or, with
``ten_crop=True``, the mean softmax of ten crops (the reference's ``--ten-crop``).
"""

from __future__ import annotations

import dataclasses
import os
import warnings
from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator, clone
from sklearn.exceptions import NotFittedError
from sklearn.utils.validation import check_is_fitted

from skcream._checks import as_bool, as_int
from skcream.estimators import _boxes_target as bt
from skcream.estimators._box_regressor import PseudoBoxRegressor
from skcream.estimators._common import ImageEstimatorMixin
from skcream.estimators._inputs import as_source, encode_labels, raw_labels, take_rows
from skcream.threads import with_thread_rule

__all__ = ["CREAMReg", "box_masks", "ten_crop_proba"]


def ten_crop_proba(localizer: Any, X: Any) -> np.ndarray:
    """Class probabilities of a fitted localizer, averaged over ten crops per image.

    Each image is resized to the localizer's ``resize_size`` square; the four corner crops,
    the centre crop of ``image_size`` and those of the mirrored image
    (:class:`~skcream.data.transforms.TenCrop`) go through its network; the softmax of the
    logits is averaged over the ten (the released CREAM_Reg's ``--ten-crop``).

    Parameters
    ----------
    localizer : fitted CREAMLocalizer
    X : images or Dataset

    Returns
    -------
    ndarray (n, C) float32, rows sum to 1, columns follow ``localizer.classes_``.
    """
    from skcream.data.transforms import TenCrop

    p = localizer._params()  # the validated parameters
    source, _ = as_source(X, None, image_column=p.image_column, label_column=p.label_column)
    cfg = localizer.data_config_
    crops = TenCrop(resize=p.resize_size, crop=p.image_size, mean=cfg["mean"], std=cfg["std"])
    device = localizer._inference_device()
    model = localizer.model_
    n = len(source)
    out = np.zeros((n, len(localizer.classes_)), dtype=np.float32)
    per_batch = max(1, p.batch_size // 10)  # images per forward pass
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for start in range(0, n, per_batch):
                idx = range(start, min(n, start + per_batch))
                x = torch.cat([crops(source.image(i)) for i in idx]).to(device)
                logits = model(x)[0].float()
                proba = torch.softmax(logits, dim=1).view(len(idx), 10, -1).mean(dim=1)
                out[start : start + len(idx)] = proba.cpu().numpy()
    finally:
        model.train(was_training)
    return out


def box_masks(boxes: np.ndarray, sizes: np.ndarray) -> list[np.ndarray]:
    """Filled box masks at each image's size.

    Parameters
    ----------
    boxes : ndarray (n, 4)
        Continuous ``x0, y0, x1, y1`` in original pixels.
    sizes : ndarray (n, 2)
        ``(W, H)``.

    Returns
    -------
    list of n bool arrays (H_i, W_i)
        Pixel ``(r, c)`` is inside when its centre ``(c + 0.5, r + 0.5)`` lies in the box
        (so the box ``[x, y, x + w, y + h]`` covers exactly ``w x h`` pixels).
    """
    out = []
    for (x0, y0, x1, y1), (w, h) in zip(np.asarray(boxes, float), np.asarray(sizes, int)):
        cx = np.arange(w) + 0.5
        cy = np.arange(h) + 0.5
        out.append(((cy >= y0) & (cy <= y1))[:, None] & ((cx >= x0) & (cx <= x1))[None, :])
    return out


class CREAMReg(ImageEstimatorMixin, BaseEstimator):
    """CREAM_Reg: class from CREAM_Base's classifier, box from a pseudo-box regressor.

    ``fit`` trains the localizer (CREAM_Base) unless ``prefit``, generates its pseudo
    boxes for the training images at ``pseudo_resolution`` x ``pseudo_resolution`` input
    (paper: 448, following PSOL) with the ground-truth classes, and trains a clone of the
    regressor on them (paper Fig. 3). Training images whose pseudo box is degenerate (no
    contour: an all-zero map) are left out of the regressor's training with a warning and
    counted in ``n_degenerate_pseudo_boxes_``.

    Parameters
    ----------
    localizer : CREAMLocalizer or None, default=None
        CREAM_Base (None: ``CREAMLocalizer()``). Give it ``memory=`` to make refits inside
        a grid search free.
    regressor : PseudoBoxRegressor or None, default=None
        None: ``PseudoBoxRegressor()``. Cloned before fitting.
    pseudo_resolution : int, default=448
        Input size at which the localizer's maps for the pseudo boxes are computed.
    prefit : bool, default=False
        Use ``localizer`` as already fitted (not cloned, not refitted). ``clone`` drops
        the fitted weights, so inside ``GridSearchCV`` prefer ``prefit=False`` with a
        localizer ``memory=`` cache.
    ten_crop : bool, default=False
        Classes from the localizer's softmax averaged over ten crops
        (:func:`ten_crop_proba`) instead of its single evaluation input.

    The class and the box come from separate networks (paper Fig. 3): labels and
    probabilities from the localizer's classifier, boxes from the regressor, which
    :meth:`evaluate` scores in its architecture's frame (``"psol"``: the released
    CREAM_Reg's, per class then over classes; ``"gap"``: the protocol's, over images).

    Attributes
    ----------
    localizer_ : CREAMLocalizer
    regressor_ : PseudoBoxRegressor
    classes_ : ndarray (C,)
    pseudo_boxes_ : ndarray (n, 4)
        The pseudo boxes of the training images (original pixels).
    n_degenerate_pseudo_boxes_ : int
    """

    def __init__(self, localizer: Any = None, regressor: Any = None,
                 pseudo_resolution: int = 448, prefit: bool = False,
                 ten_crop: bool = False) -> None:
        self.localizer = localizer
        self.regressor = regressor
        self.pseudo_resolution = pseudo_resolution
        self.prefit = prefit
        self.ten_crop = ten_crop

    _fitted_markers = ("regressor_", "localizer_")

    def _validate(self) -> tuple[Any, Any]:
        """Check the parameters; return (localizer, regressor), defaults for None."""
        from skcream.estimators.localizer import CREAMLocalizer

        as_int(self.pseudo_resolution, "pseudo_resolution", low=8)
        localizer = CREAMLocalizer() if self.localizer is None else self.localizer
        regressor = PseudoBoxRegressor() if self.regressor is None else self.regressor
        if not hasattr(localizer, "pseudo_boxes") or not hasattr(localizer, "fit"):
            raise TypeError("localizer must be a CREAMLocalizer (fit, predict, pseudo_boxes), "
                            f"got {type(localizer).__name__}")
        if not all(hasattr(regressor, m) for m in ("fit", "predict", "score")):
            raise TypeError("regressor must be a PseudoBoxRegressor (fit, predict, score), "
                            f"got {type(regressor).__name__}")
        as_bool(self.prefit, "prefit")
        as_bool(self.ten_crop, "ten_crop")
        return localizer, regressor

    @with_thread_rule
    def fit(self, X: Any, y: Any = None) -> CREAMReg:
        """Fit CREAM_Base (unless ``prefit``), make pseudo boxes, fit the regressor on them.

        Parameters
        ----------
        X : datasets.Dataset, sequence of images, or row dicts
            Training images (no boxes needed).
        y : array-like (n,), optional
            Image-level labels (else the label column of ``X``).

        Returns
        -------
        self
        """
        localizer, regressor = self._validate()
        self._clear_fitted()
        if self.prefit:
            try:
                check_is_fitted(localizer)
            except NotFittedError as exc:
                raise NotFittedError(
                    "prefit=True but the localizer is not fitted; fit it first or pass "
                    "prefit=False"
                ) from exc
        else:
            localizer = clone(localizer).fit(X, y)
        pseudo = np.asarray(
            localizer.pseudo_boxes(X, y, resolution=int(self.pseudo_resolution)), np.float64
        )
        bad = bt.degenerate_mask(pseudo)
        keep = np.flatnonzero(~bad)
        if keep.size == 0:
            raise ValueError(
                "every pseudo box is degenerate (the localizer's maps have no contour): "
                "nothing to train the regressor on"
            )
        if bad.any():
            warnings.warn(
                f"{int(bad.sum())} of {len(pseudo)} training images have a degenerate pseudo "
                f"box (indices {np.flatnonzero(bad)[:10].tolist()}); they are left out of "
                "the regressor's training",
                UserWarning,
                stacklevel=2,
            )
        X_reg = X if keep.size == len(pseudo) else take_rows(X, keep)
        self.regressor_ = clone(regressor).fit(X_reg, pseudo[keep])
        self.localizer_ = localizer
        self.classes_ = localizer.classes_
        self.pseudo_boxes_ = pseudo
        self.n_degenerate_pseudo_boxes_ = int(bad.sum())
        return self

    @with_thread_rule
    def predict(self, X: Any):
        """Class from the localizer, box (and box mask) from the regressor.

        Returns
        -------
        skcream.localize.Localization
            ``labels`` / ``scores`` from the localizer's classifier (ten crops with
            ``ten_crop``), ``maps`` its CREAM maps of those labels (original size),
            ``boxes`` (n, 4) from the regressor in original pixels, ``masks`` the filled
            boxes.
        """
        self._check_fitted()
        if self.ten_crop:
            proba = ten_crop_proba(self.localizer_, X)
            best = np.argmax(proba, axis=1)
            loc = self.localizer_.localize(X, self.classes_[best])
            loc = dataclasses.replace(
                loc, scores=proba[np.arange(len(best)), best].astype(np.float64))
        else:
            loc = self.localizer_.predict(X)
        boxes = self.regressor_.predict(X)
        sizes = np.array([m.shape[::-1] for m in loc.maps], dtype=np.int64)
        return dataclasses.replace(loc, boxes=boxes, masks=box_masks(boxes, sizes))

    @with_thread_rule
    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities of the localizer's classifier (ten crops with ``ten_crop``),
        (n, C)."""
        self._check_fitted()
        if self.ten_crop:
            return ten_crop_proba(self.localizer_, X)
        return self.localizer_.predict_proba(X)

    @with_thread_rule
    def score(self, X: Any, y: Any = None) -> float:
        """GT-known localization accuracy (percent) of the regressor's boxes, over images
        (the regressor's :meth:`~PseudoBoxRegressor.score`).

        Parameters
        ----------
        X : Dataset (or row dicts) with a bbox column (the regressor's ``bbox_column``)
        y : ignored
            Present for the scikit-learn signature (GT-known needs no class).
        """
        self._check_fitted()
        return self.regressor_.score(X)

    @with_thread_rule
    def evaluate(self, X: Any, y: Any = None) -> dict[str, float]:
        """Top-1 Loc, Top-5 Loc, GT-known Loc and top-1 classification accuracy (percent).

        Boxes from the regressor, classes from the localizer's classifier (ten crops with
        ``ten_crop``). The regressor's architecture decides when a box is correct and how
        images are averaged: ``"psol"`` as the released CREAM_Reg's ``inference.py``
        (256 -> 224 centre crop, the ground truth mapped into it, continuous IoU > 0.5;
        each metric averaged over the images of each class, then over the classes);
        ``"gap"`` as the protocol (224x224 frame, inclusive +1 IoU >= 0.5, over images;
        :func:`skcream.metrics.localization_accuracy`).

        Parameters
        ----------
        X : Dataset (or row dicts) with image, label and bbox columns
        y : array-like (n,), optional
            Labels overriding the label column.

        Returns
        -------
        dict
            ``top1_loc``, ``top5_loc``, ``gt_known_loc``, ``top1_acc``.
        """
        self._check_fitted()
        loc = self.localizer_
        source, _ = as_source(X, y, image_column=loc.image_column,
                                        label_column=loc.label_column,
                                        bbox_column=loc.bbox_column)
        values = raw_labels(source)
        if values is None:
            raise ValueError("evaluate needs ground-truth labels: pass y, or a Dataset with a "
                             "label column")
        truth = encode_labels(values, loc.classes_, loc.class_names_,
                              "y" if y is not None else "labels", n_images=len(source))
        hits = self.regressor_._box_hits(X)
        scores = ten_crop_proba(loc, X) if self.ten_crop else loc.decision_function(X)
        return bt.hit_scores(scores, hits, truth,
                             per_class=self.regressor_._arch().per_class_mean)

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | os.PathLike, *, overwrite: bool = False) -> None:
        """Write the fitted CREAM_Reg to the directory ``path`` (no pickle).

        Layout: ``localizer/`` and ``regressor/`` (each a saved estimator, see their
        ``save``) and ``cream_reg/`` (this object's parameters and pseudo boxes).
        """
        import shutil
        from pathlib import Path

        from skcream.persistence import new_staging_dir, publish_dir, write_saved

        self._check_fitted()
        path = Path(path)
        if path.exists() and not path.is_dir():
            raise FileExistsError(f"path {os.fspath(path)!r} exists and is not a directory")
        existing = {p.name for p in path.iterdir()} if path.is_dir() else set()
        extra = sorted(existing - {"localizer", "regressor", "cream_reg"})
        if extra:
            raise FileExistsError(f"path {os.fspath(path)!r} holds other files ({extra[:5]}); "
                                  "choose an empty or new directory")
        # the three parts are built in one staging folder and moved into place together: a
        # failed save leaves the previous CREAMReg whole
        staging = new_staging_dir(path)
        try:
            self.localizer_.save(staging / "localizer")
            self.regressor_.save(staging / "regressor")
            meta = {
                "class": "CREAMReg",
                "params": {"pseudo_resolution": int(self.pseudo_resolution),
                           "prefit": bool(self.prefit), "ten_crop": bool(self.ten_crop)},
                "fitted": {"n_degenerate_pseudo_boxes_": self.n_degenerate_pseudo_boxes_},
            }
            tensors = {"pseudo_boxes": torch.from_numpy(np.ascontiguousarray(self.pseudo_boxes_))}
            write_saved(staging / "cream_reg", meta, tensors)
            if existing:
                if _same_tree(staging, path):
                    return  # the identical CREAMReg again: nothing to do
                if not overwrite:
                    raise FileExistsError(f"path {os.fspath(path)!r} already holds a different "
                                          "saved CREAMReg; pass overwrite=True to replace it")
            publish_dir(staging, path, replace=bool(existing))
        finally:
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True)

    @classmethod
    def load(cls, path: str | os.PathLike, *, device: Any = None) -> CREAMReg:
        """Read a CREAM_Reg written by :meth:`save` (``device``: None, what is available)."""
        from pathlib import Path

        from skcream.estimators.localizer import CREAMLocalizer
        from skcream.persistence import read_saved

        path = Path(path)
        meta, tensors = read_saved(path / "cream_reg")
        if meta.get("class") != "CREAMReg":
            raise ValueError(f"{os.fspath(path)!r} does not hold a saved CREAMReg")
        localizer = CREAMLocalizer.load(path / "localizer", device=device)
        regressor = PseudoBoxRegressor.load(path / "regressor", device=device)
        est = cls(localizer=localizer, regressor=clone(regressor), **meta["params"])
        est.localizer_ = localizer
        est.regressor_ = regressor
        est.classes_ = localizer.classes_
        est.pseudo_boxes_ = tensors["pseudo_boxes"].numpy().astype(np.float64)
        est.n_degenerate_pseudo_boxes_ = int(meta["fitted"]["n_degenerate_pseudo_boxes_"])
        return est


def _same_tree(a, b) -> bool:
    """Whether folders ``a`` and ``b`` hold the same files with the same bytes."""
    files_a = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    files_b = sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    return files_a == files_b and all((a / f).read_bytes() == (b / f).read_bytes()
                                      for f in files_a)
