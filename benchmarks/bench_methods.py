"""The paper's Table 1 on the synthetic benchmark: CAM, HaS, ACoL, SPG, ADL, CutMix, each alone
and with CREAM plugged in.

Every method is trained once on the demo's data and budget (``skcream.presets.DEMO``:
efficientnet_lite0 with the offline ImageNet weights, ``feature_stage=3``), one torch thread,
the same seed; each network is then evaluated on the test split twice: the method's own map
(``n_iter=0``) and CREAM's re-activation of it (``n_iter=2``). Printed: MaxBoxAccV2, PxAP,
top-1 accuracy, seconds per epoch and the difference to CAM (the paper's Table 1 layout), the
per-step training cost of each method relative to CAM measured interleaved in one run, the
blind-prior floor, thread count and load average. The figure (one row of maps per method,
alone vs + CREAM) goes to ``docs/img/methods_maps.png``.

Run: ``python benchmarks/bench_methods.py [--quick] [--threads N] [--acol-width W]``.
"""

from __future__ import annotations

import argparse
import os
import time

import torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="QUICK preset")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--methods", default=None, help="comma-separated subset (default: all)")
    parser.add_argument("--acol-width", type=int, default=None,
                        help="ACoL's branch width (default: the reference's 1024)")
    parser.add_argument("--plot", default="docs/img/methods_maps.png")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    import datasets

    datasets.disable_progress_bars()
    from skcream.methods.comparison import (
        compare_methods,
        format_table,
        plot_method_maps,
        step_costs,
    )
    from skcream.presets import DEMO, QUICK

    preset = QUICK if args.quick else DEMO
    methods = args.methods.split(",") if args.methods else None
    params = {"acol_width": args.acol_width} if args.acol_width else None
    print(f"preset={preset.name} threads={torch.get_num_threads()} "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')} load={os.getloadavg()}")
    tic = time.perf_counter()
    data = preset.make_data(0)
    result = compare_methods(preset, methods, data=data, method_params=params)
    costs = step_costs(preset, methods, method_params=params)
    print("\nstep CPU seconds (interleaved, median): "
          + ", ".join(f"{m} {s:.2f}" for m, s in costs.items()))
    print()
    print(format_table(result, costs))
    print(f"\nthreads={result['threads']} load at start of evaluation={result['loadavg']} "
          f"now={os.getloadavg()} total {time.perf_counter() - tic:.0f}s")
    if args.plot:
        plot_method_maps(result, data[2], args.plot)
        print(f"figure: {args.plot}")


if __name__ == "__main__":
    main()
