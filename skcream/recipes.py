"""The paper's training recipes per dataset and backbone, as ``CREAMLocalizer`` parameters.

``recipe("CUB", "resnet50")`` is a read-only mapping of
:class:`~skcream.estimators.localizer.CREAMLocalizer` parameters, so
``CREAMLocalizer(**recipe("CUB", "resnet50"))`` trains as the paper (section 4.1) and the
WSOL benchmark it follows (``clovaai/wsolevaluation`` at commit 96f4b88: ``main.py``,
``config.py``, ``data_loaders.py``, ``wsol/*.py``) do:

* CUB: 50 epochs, lr divided by 10 after 14, 29 and 44 epochs (paper: every 15);
* ILSVRC: 6 epochs, divided after 1, 3 and 5 epochs (paper: every 2);
* OpenImages: 10 epochs, divided after 2, 5 and 8 epochs (paper: every 3);

and for every dataset and backbone: SGD with Nesterov momentum 0.9 and weight decay 1e-4,
batch 32, lr 1e-3 on the pretrained layers and 10x on the new ones (which layers: see
:mod:`skcream.backbones`), resize to 256x256, random 224 crop and flip, ImageNet
normalisation, the benchmark's torchvision ImageNet weights; CREAM's T = 2, sigma = 8,
lambda = 0.8, delta = 0.2.

Where the numbers come from:

* epochs, lr 1e-3, batch 32, decay every 15 / 2 / 3 epochs, 256 -> 224: the paper, section 4.1.
* decay *after 14, 29, 44* epochs: wsolevaluation's loop calls
  ``adjust_learning_rate(epoch + 1)`` before training epoch ``epoch`` and decays when
  ``(epoch + 1) % lr_decay_frequency == 0``, so the epochs numbered 15, 30, 45 (1-based)
  already train at the lower rate; ``torch``'s ``StepLR(15)`` would decay one epoch later.
* Nesterov momentum 0.9, weight decay 1e-4 (``config.py`` defaults; the paper names neither):
  ``main.py`` builds ``torch.optim.SGD(..., nesterov=True)``.
* ``large_feature_map`` (28x28 maps at 224): False for VGG16, True for ResNet50 and
  InceptionV3. The benchmark's per-backbone hyper-parameter sets are a spreadsheet linked from
  its README (not in the repository); this follows the training scripts published with
  later methods built on the benchmark code (e.g. BCAM's
  ``--large_feature_map TRUE`` for resnet50 / inception_v3, ``FALSE`` for vgg16). The paper
  does not say; set ``large_feature_map=False`` to get 14x14 maps.

Deliberate omissions: the benchmark's own per-method learning rates (searched on
train-fullsup, e.g. 2.28e-3 and weight decay 5e-4 for CAM on OpenImages VGG16) are not the
paper's; the paper states one lr for all.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from types import MappingProxyType
from typing import Any

__all__ = ["BACKBONES", "DATASETS", "Recipe", "recipe"]

#: datasets of the paper (wsolevaluation's names)
DATASETS = ("CUB", "ILSVRC", "OpenImages")
#: the paper's backbones
BACKBONES = ("vgg16", "resnet50", "inception_v3")

# dataset -> (epochs, paper's decay period, classes)
_SCHEDULE = {"CUB": (50, 15, 200), "ILSVRC": (6, 2, 1000), "OpenImages": (10, 3, 100)}
_LARGE_FEATURE_MAP = {"vgg16": False, "resnet50": True, "inception_v3": True}


def benchmark_milestones(epochs: int, period: int) -> tuple[int, ...]:
    """Epochs after which wsolevaluation divides the lr by 10 (``lr_decay_frequency=period``).

    Its loop decays before training the 1-based epoch ``k * period``, i.e. after
    ``k * period - 1`` finished epochs, for every such epoch up to ``epochs``.

    Parameters
    ----------
    epochs : int
    period : int

    Returns
    -------
    tuple of int
        e.g. ``(14, 29, 44)`` for 50 epochs, period 15.
    """
    return tuple(k * period - 1 for k in range(1, epochs // period + 1) if k * period - 1 >= 1)


class Recipe(Mapping):
    """``CREAMLocalizer`` parameters of one dataset x backbone, plus what is fixed in skcream.

    A read-only mapping (``CREAMLocalizer(**r)``, ``dict(r, max_epochs=2)``) of estimator
    parameters. The attributes record the rest of the setting, which is not an estimator
    parameter because skcream fixes it to the same value.

    Attributes
    ----------
    dataset, backbone : str
    n_classes : int
        Classes of the dataset (200 / 1000 / 100).
    lr_decay_frequency : int
        The paper's "divided by 10 every ... epochs" (``lr_step`` holds the benchmark's
        milestones derived from it).
    sgd_momentum, weight_decay : float
        0.9 and 1e-4: :class:`skcream.training.TrainConfig`'s fixed values.
    lr_classifier_ratio : float
        10: the new layers' (and ResNet's layer4) learning-rate multiplier.
    """

    def __init__(self, dataset: str, backbone: str, params: Mapping[str, Any], *,
                 n_classes: int, lr_decay_frequency: int) -> None:
        self.dataset = dataset
        self.backbone = backbone
        self._params = MappingProxyType(dict(params))
        self.n_classes = n_classes
        self.lr_decay_frequency = lr_decay_frequency
        self.sgd_momentum = 0.9
        self.weight_decay = 1e-4
        self.lr_classifier_ratio = 10.0

    def __getitem__(self, key: str) -> Any:
        return self._params[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._params)

    def __len__(self) -> int:
        return len(self._params)

    def __repr__(self) -> str:
        return f"recipe({self.dataset!r}, {self.backbone!r}) -> {dict(self._params)!r}"


def _canonical(value: object, choices: tuple[str, ...], what: str) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{what}: expected one of {choices}, got {value!r}")
    for choice in choices:
        if value.lower() == choice.lower():
            return choice
    raise ValueError(f"{what}: expected one of {choices} (any case), got {value!r}")


def recipe(dataset: str, backbone: str = "vgg16") -> Recipe:
    """The paper's / benchmark's training setting of ``backbone`` on ``dataset``.

    Parameters
    ----------
    dataset : {"CUB", "ILSVRC", "OpenImages"}
        Case-insensitive.
    backbone : {"vgg16", "resnet50", "inception_v3"}, default="vgg16"
        Case-insensitive.

    Returns
    -------
    Recipe
        Mapping of ``CREAMLocalizer`` parameters: ``backbone``, ``pretrained=True``,
        ``max_epochs``, ``lr=1e-3``, ``lr_step`` (the benchmark's milestones),
        ``nesterov=True``, ``batch_size=32``, ``image_size=224``, ``resize_size=256``,
        ``large_feature_map``, and CREAM's ``n_iter=2``, ``sigma=8.0``, ``momentum=0.8``
        (lambda), ``fg_threshold=0.2``, ``context_threshold=0.2``.

    Raises
    ------
    ValueError, TypeError
        For an unknown dataset or backbone (naming the choices).

    Examples
    --------
    >>> from skcream.recipes import recipe
    >>> r = recipe("CUB", "resnet50")
    >>> r["max_epochs"], r["lr_step"], r["large_feature_map"]
    (50, (14, 29, 44), True)
    """
    dataset = _canonical(dataset, DATASETS, "dataset")
    backbone = _canonical(backbone, BACKBONES, "backbone")
    epochs, period, n_classes = _SCHEDULE[dataset]
    params = {
        "backbone": backbone,
        "pretrained": True,
        "max_epochs": epochs,
        "lr": 1e-3,
        "lr_step": benchmark_milestones(epochs, period),
        "nesterov": True,
        "batch_size": 32,
        "image_size": 224,
        "resize_size": 256,
        "large_feature_map": _LARGE_FEATURE_MAP[backbone],
        "n_iter": 2,
        "sigma": 8.0,
        "momentum": 0.8,
        "fg_threshold": 0.2,
        "context_threshold": 0.2,
    }
    return Recipe(dataset, backbone, params, n_classes=n_classes, lr_decay_frequency=period)
