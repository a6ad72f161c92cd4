"""Data for skcream: loaders returning one ``datasets.Dataset`` schema, the synthetic WSOL
benchmark, box-aware transforms and the input adapters the estimators use.

See :mod:`skcream.data.schema` for the columns every loader returns.
"""

from .adapters import ImageSource, TorchImageDataset, collate
from .cub import load_cub
from .imagefolder import load_imagefolder
from .schema import SkippedImagesWarning, to_rgb, wsol_features
from .sklearn_compat import SklearnDataset, for_sklearn
from .synthetic import SyntheticConfig, iter_synthetic, make_synthetic
from .transforms import EvalTransform, TrainTransform
from .wsol import load_wsol

__all__ = [
    "EvalTransform",
    "ImageSource",
    "SkippedImagesWarning",
    "SklearnDataset",
    "SyntheticConfig",
    "TorchImageDataset",
    "TrainTransform",
    "collate",
    "for_sklearn",
    "iter_synthetic",
    "load_cub",
    "load_imagefolder",
    "load_wsol",
    "make_synthetic",
    "to_rgb",
    "wsol_features",
]
