"""A Swin small enough for unit tests, registered in timm like its own ``test_*`` models.

timm lists tiny random-init test variants of ViT (``test_vit``), ConvNeXt and MambaOut,
but no Swin smaller than ``swin_tiny_patch4_window7_224`` (28 M parameters: a 110 MB
pickle, seconds per step on one thread). ``skcream_test_swin`` is timm's own
``SwinTransformer`` class with the Swin-T layout (patch 4, window 7, four stages, map
stride 32, NHWC outputs) and Swin-T's pretrained config (fixed input size 224), at
16 channels and one block per stage. Registered by name, so every path that rebuilds a
network from its name (save / load, pickling, ``TrainedBackbone``) finds it in this
process. The real ``swin_tiny_patch4_window7_224`` is checked once in test_token_models.py.
"""

from __future__ import annotations

from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from timm.models import build_model_with_cfg, is_model, register_model
from timm.models.swin_transformer import SwinTransformer

TINY_SWIN = "skcream_test_swin"

# read by timm's register_model (the pretrained config of the entrypoint below)
default_cfgs = {
    TINY_SWIN: {
        "url": "", "num_classes": 1000, "input_size": (3, 224, 224), "pool_size": (7, 7),
        "crop_pct": 0.9, "interpolation": "bicubic", "fixed_input_size": True,
        "mean": IMAGENET_DEFAULT_MEAN, "std": IMAGENET_DEFAULT_STD,
        "first_conv": "patch_embed.proj", "classifier": "head.fc",
    }
}


def _skcream_test_swin(pretrained: bool = False, **kwargs):
    args = dict(patch_size=4, window_size=7, embed_dim=16, depths=(1, 1, 1, 1),
                num_heads=(1, 1, 2, 2))
    return build_model_with_cfg(
        SwinTransformer, TINY_SWIN, pretrained,
        feature_cfg=dict(flatten_sequential=True, out_indices=(0, 1, 2, 3)),
        **dict(args, **kwargs),
    )


_skcream_test_swin.__name__ = TINY_SWIN
if not is_model(TINY_SWIN):
    register_model(_skcream_test_swin)
