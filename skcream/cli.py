"""The ``skcream`` command: ``demo``, ``train``, ``evaluate``, ``report``, ``localize``,
``evaluate-maps``.

Every command composes the public estimators; nothing here re-implements them.
User mistakes (a bad ``--data`` spec, a missing folder, a model folder that is
not one) end with one line on stderr and a non-zero exit code; set
``SKCREAM_DEBUG=1`` to see the traceback instead. Heavy imports (torch, timm)
happen inside the commands, so ``skcream --help`` is instant.

Several processes: ``accelerate launch --multi_gpu --num_processes N -m skcream.cli train ...``
(on a machine without GPUs too: Accelerate then runs N CPU processes with gloo; note that
``accelerate launch --cpu --num_processes N`` starts ONE process unless MPI is set up) or
``torchrun --nproc_per_node N -m skcream.cli train ...``. Every process runs the training;
only the main process writes files and prints tables.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from skcream._tables import format_table
from skcream.presets import DEMO_TIMES, PRESETS

__all__ = ["CLIError", "DataSpec", "build_parser", "main", "parse_data_spec"]

# exit codes
EXIT_OK = 0
EXIT_FAILURE = 1  # the command ran into bad data / files
EXIT_USAGE = 2  # the command line itself is wrong (argparse's convention)

DATA_HELP = (
    "cub:PATH (the official CUB_200_2011 folder) | "
    "wsol:DATA_ROOT,METADATA_ROOT,DATASET[,samples_per_class=N][,proxy=true] (wsolevaluation "
    "layout, DATASET in CUB, ILSVRC, OpenImages; as the benchmark's loaders, "
    "samples_per_class=N draws N images per class (--seed) of the val split, and proxy=true "
    "reads the train split's image_ids_proxy.txt) | imagefolder:PATH (images + "
    "metadata.jsonl) | synthetic[:N] (the built-in benchmark, N images)"
)
_WSOL_DATASETS = ("CUB", "ILSVRC", "OpenImages")
#: default share of the training images ``skcream train`` holds out to choose the threshold
VAL_FRACTION = 0.2


class CLIError(Exception):
    """A user mistake on the command line: reported as one line, exit code 2."""


# --------------------------------------------------------------------------- parsing
class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line: ``skcream CMD: error: ...``."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """Show every meaningful default and keep the line breaks of descriptions."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if (
            "%(default)" not in text
            and default is not None
            and default is not False
            and default != argparse.SUPPRESS
            and not action.required
            and action.option_strings
        ):
            text += " (default: %(default)s)"
        return text


def _number_parser(cast, accept, expected: str):
    """An argparse ``type`` that casts with ``cast`` and accepts values for which ``accept``
    is true; errors read "expected <expected>, got ..."."""

    def parse(text: str):
        try:
            value = cast(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
        if not accept(value):
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text}")
        return value

    return parse


_positive_int = _number_parser(int, lambda v: v >= 1, "a positive integer")
_non_negative_int = _number_parser(int, lambda v: v >= 0, "an integer >= 0")
_positive_float = _number_parser(float, lambda v: 0 < v < float("inf"), "a finite positive number")
_image_side = _number_parser(int, lambda v: v >= 8, "an integer >= 8 (pixels; the protocol uses 224)")
_unit_float = _number_parser(float, lambda v: 0.0 <= v <= 1.0, "a number in [0, 1]")
_n_jobs = _number_parser(int, lambda v: v != 0, "a non-zero integer (-1: all cores)")
_fraction = _number_parser(float, lambda v: 0.0 <= v < 1.0, "a fraction in [0, 1)")
_stage = _number_parser(int, lambda v: v >= -100, "an integer (an index into timm's "
                        "feature_info; negative counts from the last stage)")


def _lr_step(text: str) -> int | tuple[int, ...] | None:
    """``--lr-step``: ``none``, N (divide by 10 every N epochs) or N1,N2,... (after those)."""
    if text.strip().lower() == "none":
        return None
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError:
        values = ()
    if not values or values[0] < 1 or any(b <= a for a, b in zip(values, values[1:])):
        raise argparse.ArgumentTypeError(
            f"expected 'none', an integer >= 1 or increasing integers like 14,29,44, got {text!r}")
    return values[0] if len(values) == 1 else values


def _pretrained(text: str) -> bool | str:
    low = text.lower()
    if low in ("true", "yes", "1"):
        return True
    if low in ("false", "no", "0", "none"):
        return False
    return text  # a path; checked when the backbone is built


class DataSpec:
    """A parsed ``--data`` value.

    Attributes
    ----------
    kind : {"cub", "wsol", "imagefolder", "synthetic"}
    args : tuple
        ``(path,)`` for cub/imagefolder, ``(data_root, metadata_root, dataset)``
        for wsol, ``(n_samples,)`` for synthetic.
    options : dict
        wsol only: ``samples_per_class`` (int) and ``proxy`` (bool) when given.
    """

    def __init__(self, kind: str, args: tuple, options: dict | None = None) -> None:
        self.kind = kind
        self.args = args
        self.options = dict(options or {})

    def __repr__(self) -> str:
        extra = f", {self.options!r}" if self.options else ""
        return f"DataSpec({self.kind!r}, {self.args!r}{extra})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, DataSpec) and (self.kind, self.args, self.options) == (
            other.kind, other.args, other.options)

    def check_splits(self, splits: Sequence[str | None], flag: str) -> None:
        """Refuse an option no loaded split uses: ``samples_per_class`` cuts only ``val``,
        ``proxy`` reads only ``train`` (so an option is never silently without effect).

        Parameters
        ----------
        splits : sequence of str or None
            The splits this command loads from the spec (None: not loaded).
        flag : str
            The option carrying the spec (``--data``), named in the error.
        """
        for option, split in (("samples_per_class", "val"), ("proxy", "train")):
            if self.options.get(option) and split not in splits:
                used = ", ".join(repr(s) for s in splits if s is not None)
                raise CLIError(f"{flag}: {option} applies to the {split!r} split only, and "
                               f"this command loads {used} from it")

    def load(self, split: str | None, *, default: str = "train", option: str = "--split",
             random_state: int = 0, n_default: int = 400, n_classes: int | None = None,
             allow_outside_root: bool = False):
        """Load this dataset's ``split`` as a ``datasets.Dataset`` (skcream schema).

        ``split`` None means the option was not given: the command's ``default`` split, or
        for an ``imagefolder`` without split subfolders all of its images. A split that
        does not exist is an error (:class:`CLIError` naming ``option``, the split and the
        splits there are), never a silent fallback to other images: an imagefolder without
        ``train/``, ``val/``, ``test/`` subfolders is one set of images and has no split to
        give. ``synthetic`` has no splits on disk: ``split`` (train, val or test) picks a
        disjoint seed (train and test of the same spec never share an image; the seeds are
        those of ``skcream.presets``: ``3 * random_state`` + 0 / 1 / 2 for train / val /
        test), and ``n_classes`` (default: the generator's) matches a trained model's
        classes. ``allow_outside_root`` is passed to the file loaders (metadata paths outside
        their root).
        """
        from skcream import data

        name = default if split is None else split
        trust = {"allow_outside_root": bool(allow_outside_root)}
        if self.kind == "cub":
            (path,) = self.args
            return data.load_cub(path, split=_cub_split(name, option), **trust)
        if self.kind == "wsol":
            root, meta, dataset = self.args
            # each option applies to the split it is about, as in wsolevaluation's
            # get_data_loader (num_val_sample_per_class: val; proxy_training_set: train)
            n = self.options.get("samples_per_class", 0) if name == "val" else 0
            proxy = bool(self.options.get("proxy", False)) and name == "train"
            return data.load_wsol(root, meta, dataset=dataset, split=name, samples_per_class=n,
                                  random_state=int(random_state), proxy=proxy, **trust)
        if self.kind == "imagefolder":
            (path,) = self.args
            return data.load_imagefolder(_imagefolder_split(path, split, name, option), **trust)
        (n,) = self.args
        offsets = {"train": 0, "val": 1, "test": 2}
        if name not in offsets:
            raise CLIError(f"{option} {name}: synthetic data has the splits train, val and "
                           "test")
        seed = int(random_state) * 3 + offsets[name]
        kwargs = {} if n_classes is None else {"n_classes": int(n_classes)}
        return data.make_synthetic(n if n is not None else n_default, random_state=seed,
                                   **kwargs)


#: subfolder names that make an imagefolder a set of splits (``D/train``, ``D/test``, ...)
_SPLIT_FOLDERS = ("train", "val", "validation", "test")


def _imagefolder_split(path: str, split: str | None, name: str, option: str) -> str:
    """The folder of split ``name`` of imagefolder ``path`` (see :meth:`DataSpec.load`)."""
    if os.path.isfile(os.path.join(path, "metadata.jsonl")):
        splits = []  # one set of images described by its metadata
    else:
        splits = [d for d in _SPLIT_FOLDERS if os.path.isdir(os.path.join(path, d))]
    if splits:
        if name not in splits:
            raise CLIError(f"{option} {name}: imagefolder:{path} has no split {name!r} (no "
                           f"folder {os.path.join(path, name)}); its splits: {', '.join(splits)}")
        return os.path.join(path, name)
    if split is not None:
        raise CLIError(
            f"{option} {split}: imagefolder:{path} has no split subfolders "
            f"({', '.join(_SPLIT_FOLDERS)}): it is one set of images, so it has no split "
            f"{split!r}; drop {option} to use all of its images, or make split subfolders "
            f"(e.g. {os.path.join(path, 'train')}, {os.path.join(path, 'test')})")
    return path


def _cub_split(split: str, option: str = "--split") -> str:
    if split not in ("train", "test"):
        raise CLIError(f"{option} {split}: cub data has the splits 'train' and 'test'")
    return split


def parse_data_spec(text: str) -> DataSpec:
    """Parse a ``--data`` value (see :data:`DATA_HELP`).

    Raises
    ------
    argparse.ArgumentTypeError
        With a one-line message saying what was expected.
    """
    kind, sep, rest = text.partition(":")
    kind = kind.strip().lower()
    if kind == "synthetic":
        if not sep:
            return DataSpec("synthetic", (None,))
        try:
            n = int(rest)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"synthetic:N needs a positive integer N, got {rest!r}"
            ) from None
        if n < 2:
            raise argparse.ArgumentTypeError(f"synthetic:N needs N >= 2, got {n}")
        return DataSpec("synthetic", (n,))
    if kind in ("cub", "imagefolder"):
        if not rest:
            raise argparse.ArgumentTypeError(f"{kind}: needs a folder, e.g. {kind}:/data/CUB")
        return DataSpec(kind, (rest,))
    if kind == "wsol":
        parts = [p.strip() for p in rest.split(",")]
        n_plain = next((i for i, p in enumerate(parts) if "=" in p), len(parts))
        if n_plain != 3 or not all(parts):
            raise argparse.ArgumentTypeError(
                "wsol: needs DATA_ROOT,METADATA_ROOT,DATASET[,samples_per_class=N]"
                f"[,proxy=true], e.g. wsol:/data,/wsolevaluation/metadata,CUB; got {text!r}"
            )
        name = {d.lower(): d for d in _WSOL_DATASETS}.get(parts[2].lower())
        if name is None:
            raise argparse.ArgumentTypeError(
                f"wsol: DATASET must be one of {', '.join(_WSOL_DATASETS)}, got {parts[2]!r}"
            )
        return DataSpec("wsol", (parts[0], parts[1], name), _wsol_options(parts[3:]))
    raise argparse.ArgumentTypeError(
        f"unknown data kind {kind!r}; expected one of cub:PATH, "
        "wsol:DATA_ROOT,METADATA_ROOT,DATASET, imagefolder:PATH, synthetic[:N]"
    )


def _wsol_options(parts: Sequence[str]) -> dict[str, Any]:
    """``samples_per_class=N`` / ``proxy=true|false`` of a wsol spec, checked."""
    options: dict[str, Any] = {}
    for part in parts:
        key, _, value = (t.strip() for t in part.partition("="))
        if key in options:
            raise argparse.ArgumentTypeError(f"wsol: {key} is given twice")
        if key == "samples_per_class":
            try:
                options[key] = _non_negative_int(value)
            except argparse.ArgumentTypeError as exc:
                raise argparse.ArgumentTypeError(f"wsol: samples_per_class {exc}") from None
        elif key == "proxy":
            if value.lower() not in ("true", "false", "yes", "no", "1", "0"):
                raise argparse.ArgumentTypeError(f"wsol: proxy expects true or false, got {value!r}")
            options[key] = value.lower() in ("true", "yes", "1")
        else:
            raise argparse.ArgumentTypeError(
                f"wsol: unknown option {key!r}; expected samples_per_class=N or proxy=true")
    return options


def _add_trust(p: argparse.ArgumentParser) -> None:
    p.add_argument("--allow-outside-root", action="store_true",
                   help="accept metadata paths that are absolute or climb out of the data "
                        "folder with '..' (only for metadata you wrote or trust)")


_RECIPE_DATASETS = ("CUB", "ILSVRC", "OpenImages")


class _Explicit(argparse.Action):
    """Store the value and note the option as given (``args.explicit_options``)."""

    def __call__(self, parser, namespace, values, option_string=None):
        setattr(namespace, self.dest, values)
        given = set(getattr(namespace, "explicit_options", set()))
        namespace.explicit_options = given | {self.dest}


def _recipe_dataset(value: str) -> str:
    """``--recipe`` in any case -> the dataset's canonical name."""
    for name in _RECIPE_DATASETS:
        if value.lower() == name.lower():
            return name
    return value  # argparse's choices check names the valid values


def _device_arg(text: str) -> str:
    """``--device``: 'auto' or a device this machine has (checked before any data is read)."""
    if text == "auto":
        return text
    from skcream._device import check_device

    try:
        check_device(text, "--device")
    except (TypeError, ValueError) as exc:
        raise argparse.ArgumentTypeError(str(exc).removeprefix("--device: ")) from None
    return text


def _add_device(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", type=_device_arg, default="auto",
                   help="torch device: 'auto' (CUDA when available), 'cpu', 'cuda:0', ...")


#: help of every command's --threads (the rule lives in skcream.threads)
THREADS_HELP = ("torch intra-op threads (default: 1 on a machine with <= 2 usable cores, where "
                "2 threads trained 4-8x and predicted ~9x slower under load, 1.7x faster on an idle "
                "machine; else torch's own; "
                "see skcream.threads)")


def _add_threads(p: argparse.ArgumentParser) -> None:
    p.add_argument("--threads", type=_positive_int, default=None, help=THREADS_HELP)


def _add_common(p: argparse.ArgumentParser, *, per_process_batch: bool = False) -> None:
    _add_device(p)
    _add_threads(p)
    if per_process_batch:  # None tells an explicit --batch-size from the default
        p.add_argument("--batch-size", type=_positive_int, default=None, action=_Explicit,
                       help="images per batch and process (default: 32)")
    else:
        p.add_argument("--batch-size", type=_positive_int, default=32, help="images per batch")
    p.add_argument("--num-workers", type=_non_negative_int, default=None,
                   help="DataLoader worker processes (default: auto, one per CPU of this "
                        "process minus one, none for fewer than 512 images)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``skcream`` command (with all sub-commands)."""
    from skcream import __version__

    parser = _Parser(
        prog="skcream",
        description=(
            "Weakly supervised object localization with CREAM (CVPR 2022): class "
            "re-activation maps on timm backbones.\n\nStart with 'skcream demo'."
        ),
        formatter_class=_Formatter,
    )
    parser.add_argument("--version", action="version", version=f"skcream {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    # -- demo
    p = sub.add_parser(
        "demo",
        help="train and evaluate CREAM vs CAM on the built-in synthetic benchmark",
        description=(
            "Build the synthetic WSOL benchmark, fine-tune a CREAMLocalizer on it (offline "
            "ImageNet EfficientNet-Lite0), print CAM vs calibrated map vs CREAM, and write "
            "pictures, an HTML report and the model to --out.\nFull run: "
            f"{DEMO_TIMES['demo']} on a 2-core CPU; --quick: {DEMO_TIMES['quick']} "
            f"({DEMO_TIMES['measured']}; benchmarks/bench_doc_timings.py)."
        ),
        formatter_class=_Formatter,
    )
    p.add_argument("--out", type=Path, default=Path("skcream-demo"),
                   help="output folder (created; an existing folder is reused only if an "
                        "earlier demo made it)")
    p.add_argument("--quick", action="store_true",
                   help="smaller data and shorter training (skcream.presets.QUICK)")
    p.add_argument("--seed", type=int, default=0, help="random seed of the data and training")
    _add_device(p)
    _add_threads(p)
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--methods", action="store_true",
                   help="instead: the paper's Table 1, every WSOL method (CAM, HaS, ACoL, SPG, "
                        "ADL, CutMix) alone and + CREAM (six trainings)")
    p.set_defaults(func=_cmd_demo)

    # -- train
    p = sub.add_parser(
        "train",
        help="fine-tune a CREAMLocalizer on a dataset",
        description=(
            "Fine-tune a CREAMLocalizer (the paper's recipe: SGD, lr 1e-3, 10x on the new "
            "head, step decay, resize 256 / crop 224 / flip) and save it to --out.\n"
            "--preset demo trains exactly the demo's network (skcream train --preset demo "
            "--out run; then skcream evaluate --model run --data synthetic:128 scores it on "
            "the demo's test split); --recipe CUB the paper's setting.\n"
            "The box threshold is chosen on --val-data, else on a held-out share of the "
            "training images (--val-fraction).\n"
            "Several processes / GPUs (also N CPU processes): accelerate launch --multi_gpu "
            "--num_processes N -m skcream.cli train ...\n"
            "--batch-size is per process: one SGD step sees batch-size x N images at the "
            "same --lr; --global-batch-size 32 keeps the paper's 32 on any N dividing it."
        ),
        formatter_class=_Formatter,
    )
    p.add_argument("--data", type=parse_data_spec, default=None, metavar="SPEC",
                   help=DATA_HELP + "; required unless --preset gives the demo's data")
    p.add_argument("--split", default=None,
                   help="split of --data to train on (default: train; an imagefolder without "
                        "split subfolders is used whole)")
    p.add_argument("--val-data", type=parse_data_spec, metavar="SPEC", default=None,
                   help="data with boxes to pick the box threshold on (and record "
                        "MaxBoxAccV2 per epoch); same forms as --data")
    p.add_argument("--val-split", default=None,
                   help="split of --val-data (default: val; an imagefolder without split "
                        "subfolders is used whole)")
    p.add_argument("--val-fraction", type=_fraction, default=VAL_FRACTION, action=_Explicit,
                   metavar="F",
                   help="without --val-data: hold out this share of the training images "
                        "(stratified by class; never a class's only image) and choose the "
                        "box threshold on them, not on images the network trained on; 0: "
                        "train on all, threshold 0.2")
    p.add_argument("--keep", choices=("last", "best"), default="last",
                   help="the weights to save: the last epoch's, or those of the epoch with "
                        "the best localization on the validation images (--val-data, the "
                        "preset's or the --val-fraction held out; MaxBoxAccV2, PxAP for "
                        "masks), as wsolevaluation's --eval_checkpoint_type")
    presets = p.add_mutually_exclusive_group()
    presets.add_argument("--preset", choices=sorted(PRESETS), default=None,
                         help="train what 'skcream demo' (demo) or 'skcream demo --quick' "
                              "(quick) trains (skcream.presets): its backbone, sizes, epochs, "
                              "lr and, without --data, its synthetic train and val splits; "
                              "any option given overrides it")
    presets.add_argument("--recipe", choices=_RECIPE_DATASETS, default=None,
                         type=_recipe_dataset,
                         help="train with the paper's / WSOL benchmark's setting of --backbone "
                              "(vgg16, resnet50 or inception_v3) on this dataset "
                              "(skcream.recipes.recipe): epochs, lr schedule, Nesterov SGD, "
                              "large_feature_map, ...; any option given overrides it")
    p.add_argument("--backbone", default="vgg16", action=_Explicit,
                   help="timm model name (with --preset: the preset's)")
    p.add_argument("--pretrained", type=_pretrained, default=True, action=_Explicit,
                   help="true (timm hub; efficientnet_lite0 offline), false, or a path to a "
                        ".pth/.safetensors state dict")
    p.add_argument("--epochs", type=_positive_int, default=50, action=_Explicit,
                   help="training epochs (with --recipe / --preset: theirs unless given)")
    p.add_argument("--lr", type=_positive_float, default=1e-3, action=_Explicit,
                   help="learning rate of the pretrained layers (new layers: 10x; with "
                        "--recipe / --preset: theirs unless given)")
    p.add_argument("--lr-step", type=_lr_step, default=15, action=_Explicit, metavar="N",
                   help="divide the lr by 10 every N epochs; N1,N2,...: after those epochs; "
                        "none: constant (with --recipe / --preset: theirs unless given)")
    p.add_argument("--image-size", type=_image_side, default=224, action=_Explicit,
                   help="network input side: random crops of it are cut from images resized "
                        "to --resize-size (with --recipe / --preset: theirs unless given)")
    p.add_argument("--resize-size", type=_image_side, default=None, action=_Explicit,
                   help="side training images are resized to before the random crop "
                        "(default: the protocol's 256/224 of --image-size, 146 at 128)")
    p.add_argument("--feature-stage", type=_stage, default=None, action=_Explicit,
                   metavar="K",
                   help="read the maps at stage K of the backbone (timm's feature_info; the "
                        "demo uses 3 for efficientnet_lite0) instead of the last stage")
    p.add_argument("--out", type=Path, required=True,
                   help="output folder: the saved model, plus checkpoints/ for --resume")
    p.add_argument("--resume", action="store_true",
                   help="continue from the last checkpoint in OUT/checkpoints")
    p.add_argument("--wait", action="store_true",
                   help="when another run is using --out, wait for it instead of failing")
    p.add_argument("--mixed-precision", choices=("no", "fp16", "bf16"), default="no",
                   help="mixed precision (through accelerate)")
    p.add_argument("--seed", type=int, default=0, help="random seed")
    p.add_argument("--global-batch-size", type=_positive_int, default=None,
                   help="images per SGD step over all processes: the per-process batch is "
                        "this / the number of processes (must divide it); excludes "
                        "--batch-size (default: --batch-size 32 per process)")
    _add_trust(p)
    _add_common(p, per_process_batch=True)
    p.set_defaults(func=_cmd_train)

    # -- evaluate
    p = sub.add_parser(
        "evaluate",
        help="evaluate a saved model: MaxBoxAccV2, PxAP, Top-k Loc",
        description=(
            "Evaluate a saved CREAMLocalizer on a dataset with the WSOL protocol (224x224, "
            "GT-known maps for MaxBoxAccV2 / MaxBoxAcc / PxAP; the model's box threshold for "
            "Top-1 / Top-5 / GT-known Loc), beside the same network's plain CAM (n_iter=0) "
            "and an image-blind centre prior."
        ),
        formatter_class=_Formatter,
    )
    p.add_argument("--model", type=Path, required=True, help="folder written by 'skcream train'")
    p.add_argument("--data", type=parse_data_spec, required=True, metavar="SPEC", help=DATA_HELP)
    p.add_argument("--split", default=None,
                   help="split of --data (default: test; an imagefolder without split "
                        "subfolders is used whole)")
    p.add_argument("--json", action="store_true", help="print the metrics as JSON")
    p.add_argument("--n-jobs", type=_n_jobs, default=None, metavar="N",
                   help="threads for the metrics (-1: all cores; numbers are identical)")
    _add_trust(p)
    _add_common(p)
    p.set_defaults(func=_cmd_evaluate)

    # -- report
    p = sub.add_parser(
        "report",
        help="a self-contained HTML report: metrics, curves, a gallery of every image",
        description=(
            "Evaluate a saved CREAMLocalizer like 'skcream evaluate' and write a static "
            "folder (index.html + images; opens from the file system, no server, no "
            "network): the metric table for CAM, CREAM and blind priors, the threshold "
            "curves and histograms, and a gallery of every image with its boxes, sortable "
            "by IoU, filterable by class and hit/miss, with a threshold slider."
        ),
        formatter_class=_Formatter,
    )
    p.add_argument("--model", type=Path, required=True, help="folder written by 'skcream train'")
    p.add_argument("--data", type=parse_data_spec, required=True, metavar="SPEC", help=DATA_HELP)
    p.add_argument("--split", default=None,
                   help="split of --data to report on (default: test; an imagefolder without "
                        "split subfolders is used whole)")
    p.add_argument("--val-split", default=None,
                   help="split of --data (with boxes) where CAM's and the priors' threshold "
                        "is chosen (CREAM uses the model's own)")
    p.add_argument("--prior-split", default=None,
                   help="split of --data whose boxes make the train-box prior (e.g. train)")
    p.add_argument("--out", type=Path, required=True,
                   help="output folder (new, empty, or an earlier report)")
    p.add_argument("--title", default="skcream evaluation report", help="page title")
    _add_common(p)
    p.set_defaults(func=_cmd_report)

    # -- localize
    p = sub.add_parser(
        "localize",
        help="boxes and overlays for your images",
        description=(
            "Localize the objects of IMAGE files with a saved model (--model), or with a "
            "pretrained ImageNet classifier and no training at all (--post-hoc). Writes one "
            "overlay PNG per image and boxes.json to --out."
        ),
        formatter_class=_Formatter,
    )
    p.add_argument("images", nargs="+", metavar="IMAGE", type=Path, help="image files")
    p.add_argument("--model", type=Path, default=None, help="folder written by 'skcream train'")
    p.add_argument("--post-hoc", action="store_true",
                   help="no trained model: the backbone's ImageNet classifier, re-activated "
                        "from each image's own CAM")
    p.add_argument("--backbone", default="efficientnet_lite0",
                   help="timm model with an ImageNet head (with --post-hoc)")
    p.add_argument("--pretrained", type=_pretrained, default=True,
                   help="weights of the --post-hoc backbone: true or a .pth/.safetensors path")
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument("--threshold", type=_unit_float, default=None,
                   help="box threshold on the map (default: the model's own; post-hoc: "
                        "the measured default, see docs/post_hoc.md)")
    p.add_argument("--cam", choices=_map_sources(), default="cam", metavar="NAME",
                   help="map the post-hoc re-activation starts from: "
                        + ", ".join(_map_sources()))
    p.add_argument("--layer", default=None, metavar="NAME",
                   help="with --post-hoc: the layer --cam reads, a module name of the timm "
                        "model, e.g. blocks.5 (default: the last feature layer; a ViT's last "
                        "blocks.N.norm1)")
    p.add_argument("--no-reactivate", action="store_true",
                   help="with --post-hoc: the --cam map itself, not re-activated")
    p.add_argument("--save-maps", action="store_true",
                   help="also write each map at the image's size as <stem>_map.npy "
                        "(float32 in [0, 1]) beside the overlays")
    _add_common(p)
    p.set_defaults(func=_cmd_localize)

    _add_evaluate_maps(sub)
    return parser


# --------------------------------------------------------------------------- helpers
def _map_sources() -> tuple[str, ...]:
    from skcream.map_sources import MAP_SOURCES

    return MAP_SOURCES


def _is_main_process() -> bool:
    """True unless this is a non-zero rank of ``accelerate launch`` / torchrun."""
    return int(os.environ.get("RANK", os.environ.get("LOCAL_RANK", "0")) or 0) == 0


def _verbose(args: argparse.Namespace) -> int:
    return 0 if getattr(args, "quiet", False) or not _is_main_process() else 1


def _device(args: argparse.Namespace) -> str | None:
    return None if args.device == "auto" else args.device


def _load_model(path: Path, device: str | None = None):
    if not path.exists():
        raise CLIError(f"--model {path}: no such folder")
    if not path.is_dir():
        raise CLIError(f"--model {path}: expected the folder written by 'skcream train'")
    from skcream.estimators.localizer import CREAMLocalizer

    # a saved model records no device: it loads where it is used (--device, default auto)
    return CREAMLocalizer.load(path, device=device)


# --------------------------------------------------------------------------- localize
#: overlays of images whose shorter side is below this are upsampled (bicubic) to it
OVERLAY_MIN_SIDE = 384
#: contrasting line drawn on both sides of every (bold) box line of an overlay
OVERLAY_OUTLINE = (0, 0, 0)


def localize_files(paths: Sequence[Path], out: Path, *, model: Any = None,
                   backbone: str = "efficientnet_lite0", pretrained: Any = True,
                   threshold: float | None = None, device: str | None = None,
                   batch_size: int = 32, verbose: int = 1,
                   progress: Any = None, cam: str = "cam", reactivate: bool = True,
                   save_maps: bool = False, layer: str | None = None) -> list[dict[str, Any]]:
    """Localize image files; write ``<stem>_overlay.png`` per image and ``boxes.json``.

    Images are read and processed ``batch_size`` at a time (never all held in memory).
    Each overlay shows the map, the box (with a contrasting outline, visible on any
    colour and along the image border) and the predicted class name and score; images
    whose shorter side is below :data:`OVERLAY_MIN_SIDE` pixels are upsampled in the
    overlay (boxes in ``boxes.json`` stay in the image's own pixels).

    Parameters
    ----------
    paths : sequence of Path
        Image files.
    out : Path
        Output folder (created).
    model : CREAMLocalizer, optional
        A fitted localizer; None runs the post-hoc ImageNet classifier of ``backbone``
        with :data:`skcream.post_hoc.POST_HOC_DEFAULTS`.
    threshold : float, optional
        Box threshold on the map in [0, 1); None: the model's own (post-hoc: the
        measured default of :data:`skcream.post_hoc.POST_HOC_DEFAULTS`).
    progress : callable (index, total, record) or None
        Called after each image's overlay is written (the CLI prints one line).
    cam : str, default="cam"
        Post-hoc: the map source the re-activation starts from
        (:data:`skcream.map_sources.MAP_SOURCES`).
    reactivate : bool, default=True
        Post-hoc: False draws the ``cam`` map itself.
    save_maps : bool, default=False
        Also write each map, at the image's size, as ``<stem>_map.npy`` (float32 in
        [0, 1], written atomically).
    layer : str or None, default=None
        Post-hoc: the layer the ``cam`` map is computed on (a module name of the timm
        model); None is the last feature layer (a ViT's last ``blocks.N.norm1``).

    Returns
    -------
    list of dict
        One record per image: ``image``, ``label``, ``class_name``, ``score``,
        ``box`` (x0, y0, x1, y1 in the image's pixels), ``overlay`` (and ``map`` with
        ``save_maps``).
    """
    from skcream.data.decode import decode_image
    from skcream.data.files import display_path
    from skcream.viz import overlay

    if model is None:
        from skcream.map_sources import check_map_source
        from skcream.post_hoc import POST_HOC_DEFAULTS, PostHocClassifier

        check_map_source(cam)
        post_hoc = PostHocClassifier(backbone, pretrained, device=device, batch_size=batch_size)
        box_threshold = POST_HOC_DEFAULTS["threshold"] if threshold is None else threshold
    elif threshold is not None:
        model = model.set_params(box_threshold=threshold)
    from skcream._fs import make_dirs

    make_dirs(out, "--out")
    records: list[dict[str, Any]] = []
    used: set[str] = set()
    name_max = _name_max(out)
    total = len(paths)
    from skcream.distributed import active

    # under distributed_inference, a chunk holds one batch per process
    step = batch_size * (active() or (0, 1))[1]
    main_process = _is_main_process()  # under a launcher every process holds all results
    for start in range(0, total, step):
        chunk = list(paths[start:start + step])
        # the one decoder: pixels as viewers show them (EXIF orientation), so the boxes in
        # boxes.json and the overlays are in the frame of the photo as the user sees it
        images = [decode_image(path, f"IMAGE {display_path(path)}") for path in chunk]
        if model is None:
            boxes, maps, labels, scores, label_names = _post_hoc_chunk(
                post_hoc, images, box_threshold, cam, reactivate, layer)
        else:
            result = model.predict(images)
            position = {_jsonable(c): i for i, c in enumerate(model.classes_)}
            names = list(getattr(model, "class_names_", None)
                         or [str(c) for c in model.classes_])
            boxes, maps, labels = result.boxes, result.maps, result.labels
            scores = result.scores
            label_names = [names[position[_jsonable(c)]] for c in labels]
        for j, path in enumerate(chunk):
            # printable (UTF-8) and within the file-name limit, whatever the input's name
            name = overlay_name(display_path(Path(path).stem), used, name_max)
            box = [float(v) for v in boxes[j]]
            score = None if scores is None else float(scores[j])
            text = label_names[j] if score is None else f"{label_names[j]} {score:.2f}"
            if main_process:
                overlay(images[j], maps[j], boxes=[box], label=text, outline=OVERLAY_OUTLINE,
                        min_side=OVERLAY_MIN_SIDE).save(out / name)
            record = {"image": display_path(path), "label": _jsonable(labels[j]),
                      "class_name": label_names[j], "score": score, "box": box,
                      "overlay": name}
            if save_maps:
                record["map"] = name[:-len("_overlay.png")] + "_map.npy"
                if main_process:
                    _save_map(out / record["map"], maps[j])
            records.append(record)
            if progress is not None and main_process:
                progress(len(records), total, record)
    if main_process:
        (out / "boxes.json").write_text(json.dumps(records, indent=2) + "\n")
    return records


def _save_map(path: Path, full: Any) -> None:
    """One map (H, W) as float32 ``.npy``, all-or-nothing (temporary file, fsync, rename)."""
    import io

    import numpy as np

    from skcream.persistence import write_bytes_atomic

    buf = io.BytesIO()
    np.save(buf, np.asarray(full, dtype=np.float32), allow_pickle=False)
    write_bytes_atomic(path, buf.getvalue())


def _name_max(folder: Path) -> int:
    """The longest file name (bytes) ``folder`` takes (255 where the system does not say)."""
    try:
        return int(os.pathconf(folder, "PC_NAME_MAX"))
    except (AttributeError, OSError, ValueError):
        return 255


def overlay_name(stem: str, used: set[str], name_max: int = 255) -> str:
    """``<stem>_overlay.png``, unique among ``used`` (added to it), and a valid file name.

    Two inputs with one stem (``a/x.jpg``, ``b/x.jpg``) get ``x_overlay.png`` and
    ``x_2_overlay.png``. A stem too long for the file-name limit once the suffix is added
    keeps its first bytes plus a digest of the whole stem (distinct stems stay distinct).

    Parameters
    ----------
    stem : str
        The input file's name without its extension.
    used : set of str
        Names given so far.
    name_max : int, default=255
        The limit in bytes (``os.pathconf(out, "PC_NAME_MAX")``).

    Returns
    -------
    str
    """
    import hashlib

    raw = os.fsencode(stem)
    k = 1
    while True:
        tail = "_overlay.png" if k == 1 else f"_{k}_overlay.png"
        room = name_max - len(tail.encode())
        if len(raw) <= room:
            name = stem + tail
        else:
            digest = hashlib.sha256(raw).hexdigest()[:8]
            head = raw[:max(room - 9, 1)].decode("utf-8", "ignore") or "x"  # whole characters
            name = f"{head}~{digest}{tail}"
        if name not in used:
            used.add(name)
            return name
        k += 1


def _post_hoc_chunk(post_hoc: Any, images: list, threshold: float, cam: str = "cam",
                    reactivate: bool = True, layer: str | None = None):
    """Boxes, maps at the original size, labels, scores and class names of images."""
    from skcream.post_hoc import boxes_at_original_size, post_hoc_maps

    result = post_hoc.predict(images, cam=cam, layer=layer)
    maps = post_hoc_maps(result) if reactivate else post_hoc_maps(result, output="cam")
    boxes, full = boxes_at_original_size(maps, [im.size for im in images], threshold)
    names = [result.class_names[int(c)] for c in result.labels]
    return boxes, full, result.labels, result.scores, names


def _jsonable(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


# --------------------------------------------------------------------------- commands
def _cmd_demo(args: argparse.Namespace) -> int:
    from skcream.demo import run_demo, run_methods_demo

    if getattr(args, "methods", False):
        run_methods_demo(out=args.out, quick=args.quick, random_state=args.seed,
                         device=_device(args), verbose=_verbose(args), threads=args.threads)
        return EXIT_OK
    run_demo(out=args.out, quick=args.quick, random_state=args.seed, device=_device(args),
             verbose=_verbose(args), threads=args.threads)
    return EXIT_OK


def _cmd_train(args: argparse.Namespace) -> int:
    out: Path = args.out
    # usage mistakes before --out is touched
    _per_process_batch(args.batch_size, args.global_batch_size)
    _check_train_data_options(args)
    if not _is_main_process():
        return _train(args)
    from skcream._locks import FolderLock

    # one run per --out: a second one fails here, before loading data or training
    with FolderLock(out, what="--out", timeout=None if args.wait else 0,
                    hint="or pass --wait to queue behind it"):
        return _train(args)


def _train(args: argparse.Namespace) -> int:
    out: Path = args.out
    from skcream.training import has_checkpoint

    ckpt = out / "checkpoints"
    if args.data is not None:
        args.data.check_splits([args.split or "train"], "--data")
    if args.val_data is not None:
        args.val_data.check_splits([args.val_split or "val"], "--val-data")
    # a committed checkpoint, not any file: a run killed before its first epoch leaves its
    # lock file (and perhaps an uncommitted epoch) behind, which is no checkpoint to resume
    if args.resume and not ckpt.is_dir():
        raise CLIError(f"--resume: no checkpoints in {ckpt}; train without --resume first")
    if not args.resume and has_checkpoint(ckpt):
        raise CLIError(f"--out {out} already holds checkpoints; pass --resume to continue "
                       "them, or choose another --out")
    batch_size = _per_process_batch(args.batch_size, args.global_batch_size)
    target = out / "model"
    if not args.resume and target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise CLIError(f"--out {out} already holds a trained model ({target}); choose another "
                       "--out")
    from skcream.estimators.localizer import CREAMLocalizer

    settings = _train_settings(args, batch_size)
    train, val, note = _train_data(args)
    if args.keep == "best" and val is None:
        raise CLIError(f"--keep best chooses the epoch on validation images, and there are "
                       f"none: {note}")
    model = CREAMLocalizer(
        **settings,
        validation_data=val,
        keep=args.keep,
        device=_device(args),
        random_state=args.seed,
        verbose=_verbose(args),
        num_workers=args.num_workers,
        mixed_precision=args.mixed_precision,
        checkpoint_dir=str(ckpt),
    )
    if _is_main_process():
        import torch

        from skcream.threads import usable_cores

        shown = ", ".join(f"{k}={v!r}" for k, v in settings.items())
        print(f"training CREAMLocalizer({shown})", flush=True)
        print(f"data: {len(train)} training images; {note}", flush=True)
        print(f"torch intra-op threads: {torch.get_num_threads()} ({usable_cores()} usable "
              f"cores, load average {os.getloadavg()[0]:.2f} at start)", flush=True)
    model.fit(train)
    if _is_main_process():
        last = model.history_[-1] if model.history_ else {}
        n_proc = last.get("num_processes", _world_size())
        print(f"trained on {n_proc} process(es): global batch "
              f"{last.get('global_batch_size', batch_size * n_proc)} ({batch_size} per "
              f"process), lr {model.lr:g}")
        where = (f"chosen on the {len(val)} validation images" if val is not None
                 else "the default: no validation images")
        print(f"box threshold {model.box_threshold_:.2f} ({where})")
        if args.keep == "best":
            print(f"kept epoch {model.best_epoch_} of {len(model.history_)} (best on the "
                  "validation images)")
        saved = save_or_save_beside(model, target, overwrite=args.resume)
        if saved != target:
            print(f"skcream train: error: could not save the model to {target}; saved it to "
                  f"{saved} instead", file=sys.stderr)
            return EXIT_FAILURE
        print(f"saved the model to {target}")
    return EXIT_OK


#: estimator parameter -> ``skcream train`` option (dest) that sets it
_TRAIN_OPTIONS = {"backbone": "backbone", "pretrained": "pretrained", "max_epochs": "epochs",
                  "lr": "lr", "lr_step": "lr_step", "image_size": "image_size",
                  "resize_size": "resize_size", "feature_stage": "feature_stage"}


def _train_settings(args: argparse.Namespace, batch_size: int) -> dict[str, Any]:
    """CREAMLocalizer parameters: the recipe's or preset's, then every option given (an
    option not given keeps the recipe's / preset's value, else the option's default)."""
    base: dict[str, Any] = {}
    if args.recipe is not None:
        from skcream.recipes import BACKBONES, recipe

        if args.backbone not in BACKBONES:
            raise CLIError(f"--recipe: recipes exist for --backbone {', '.join(BACKBONES)}; "
                           f"got {args.backbone!r}")
        base = recipe(args.recipe, args.backbone)
    elif args.preset is not None:
        base = PRESETS[args.preset].estimator_params()
    explicit = getattr(args, "explicit_options", set())
    settings = dict(base)
    for key, dest in _TRAIN_OPTIONS.items():
        if key not in base or dest in explicit:
            settings[key] = getattr(args, dest)
    given_batch = "batch_size" in explicit or args.global_batch_size is not None
    settings["batch_size"] = batch_size if given_batch or "batch_size" not in base \
        else base["batch_size"]
    size, resize = settings["image_size"], settings.get("resize_size")
    if resize is not None and resize < size:
        raise CLIError(f"--resize-size {resize} is smaller than --image-size {size}: random "
                       "crops of --image-size are cut from the resized image")
    return settings


def _check_train_data_options(args: argparse.Namespace) -> None:
    """The data options of ``skcream train`` that exclude each other (a usage error)."""
    explicit = getattr(args, "explicit_options", set())
    if args.data is None and args.preset is None:
        raise CLIError("--data is required (or --preset, to train on the demo's data)")
    if args.val_data is not None and "val_fraction" in explicit:
        raise CLIError("give --val-data or --val-fraction, not both")
    if args.keep == "best" and args.val_data is None and args.data is not None \
            and args.val_fraction == 0:
        raise CLIError("--keep best chooses the epoch on validation images: give --val-data "
                       "or a --val-fraction above 0")
    if args.data is None and "val_fraction" in explicit:
        raise CLIError("--val-fraction holds out part of --data; without --data, --preset "
                       "trains on its own train split and chooses the threshold on its val "
                       "split")


def _train_data(args: argparse.Namespace) -> tuple[Any, Any, str]:
    """Training and validation data of ``skcream train``, and a line saying where the box
    threshold will be chosen: ``--val-data``; else a stratified ``--val-fraction`` held out of
    the training images (when they have boxes); ``--preset`` without ``--data``: the
    preset's own synthetic train and val splits (the demo's)."""
    _check_train_data_options(args)
    trust = args.allow_outside_root
    val = None
    if args.data is None:
        train, val, _ = PRESETS[args.preset].make_data(random_state=args.seed)
        where = f"the preset's {len(val)} synthetic validation images"
    else:
        train = args.data.load(args.split, default="train", random_state=args.seed,
                               allow_outside_root=trust)
    if args.val_data is not None:
        val = args.val_data.load(args.val_split, default="val", option="--val-split",
                                 random_state=args.seed, allow_outside_root=trust)
        where = f"the {len(val)} images of --val-data"
    if val is not None:
        return train, val, f"box threshold chosen on {where}"
    if args.val_fraction == 0:
        return train, None, "no validation images (--val-fraction 0): box threshold 0.2"
    from skcream.data.adapters import ImageSource
    from skcream.data.splits import stratified_holdout

    source = ImageSource.from_input(train)
    if not source.has_boxes or source.labels is None:
        return train, None, ("the training images have no boxes to choose the box threshold "
                             "on: it stays 0.2 (give --val-data with boxes)")
    keep, held = stratified_holdout(source.labels, args.val_fraction, args.seed)
    if len(held) == 0:
        return train, None, ("no class has two images to hold one out: box threshold 0.2 "
                             "(give --val-data)")
    val, train = train.select(held), train.select(keep)
    return train, val, (f"held out {len(held)} more (--val-fraction {args.val_fraction:g}, "
                        "stratified by class) to choose the box threshold on images the "
                        "network does not train on (--val-fraction 0: train on all)")


def _world_size() -> int:
    """Number of processes of this ``accelerate launch`` / torchrun run (1 otherwise)."""
    try:
        return max(int(os.environ.get("WORLD_SIZE", "1") or 1), 1)
    except ValueError:
        return 1


def _per_process_batch(batch_size: int | None, global_batch_size: int | None) -> int:
    """``--batch-size`` (per process, default 32) or ``--global-batch-size`` / processes."""
    if global_batch_size is None:
        return 32 if batch_size is None else batch_size
    if batch_size is not None:
        raise CLIError("give --batch-size (per process) or --global-batch-size, not both")
    world = _world_size()
    if global_batch_size % world:
        raise CLIError(f"--global-batch-size {global_batch_size} is not divisible by the "
                       f"{world} processes of this run")
    return global_batch_size // world


def save_or_save_beside(model: Any, target: Path, *, overwrite: bool = False) -> Path:
    """Save ``model`` to ``target``; if that fails, beside it (then in the temporary folder).

    Nothing trained is thrown away: the first folder that takes the model is returned, and
    the reason ``target`` failed is printed on stderr. Raises only when no folder does.
    """
    import tempfile
    import time

    try:
        model.save(target, overwrite=overwrite)
        return target
    except (OSError, ValueError) as exc:
        print(f"skcream: could not write {target}: {' '.join(str(exc).split())}",
              file=sys.stderr)
        first = exc
    stamp = f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
    for place in (target.with_name(f"{target.name}-{stamp}"),
                  Path(tempfile.gettempdir()) / f"skcream-model-{stamp}"):
        try:
            model.save(place)
            return place
        except (OSError, ValueError):
            continue
    raise first


def _cmd_evaluate(args: argparse.Namespace) -> int:
    args.data.check_splits([args.split or "test"], "--data")
    model = _load_model(_model_dir(args.model), _device(args))
    from skcream.demo import evaluate_localizer
    from skcream.distributed import distributed_inference

    data = args.data.load(args.split, default="test", n_classes=len(model.classes_),
                          allow_outside_root=args.allow_outside_root)
    with distributed_inference():  # under a launcher: each process runs its share of images
        report = evaluate_localizer(model, data, batch_size=args.batch_size,
                                    verbose=_verbose(args), n_jobs=args.n_jobs)
    if not _is_main_process():
        return EXIT_OK
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        names = {"max_box_acc_v2": "MaxBoxAccV2", "max_box_acc": "MaxBoxAcc", "pxap": "PxAP",
                 "top1_loc": "Top-1 Loc", "top5_loc": "Top-5 Loc",
                 "gt_known_loc": "GT-known Loc", "top1_acc": "Cls acc", "threshold": "tau"}
        baselines = report.pop("baselines")
        keys = ["method", *report]
        rows = [dict(row, method=name) for name, row in baselines.items()]
        rows.append(dict(report, method="CREAM"))
        print(format_table(rows, keys, headers=[names.get(k, k) for k in keys]))
        print("(the centre prior never looks at the image; CAM is the same network with "
              "n_iter=0, at the same tau)")
    return EXIT_OK


def _cmd_report(args: argparse.Namespace) -> int:
    from skcream.report import _check_out

    _check_out(args.out)  # before loading anything
    args.data.check_splits([args.split or "test", args.val_split, args.prior_split], "--data")
    model = _load_model(_model_dir(args.model)).set_params(
        batch_size=args.batch_size, num_workers=args.num_workers, verbose=_verbose(args),
        device=_device(args))
    n_classes = len(model.classes_)
    data = args.data.load(args.split, default="test", n_classes=n_classes)
    val = (None if args.val_split is None else
           args.data.load(args.val_split, option="--val-split", n_classes=n_classes))
    prior = (None if args.prior_split is None else
             args.data.load(args.prior_split, option="--prior-split", n_classes=n_classes))
    from skcream.report._localizer import localizer_report

    spec = {"data": f"{args.data.kind}:{','.join(str(a) for a in args.data.args)}"
                    + "".join(f",{k}={v}" for k, v in args.data.options.items()),
            "split": args.split or "test", "val split": args.val_split,
            "prior split": args.prior_split,
            "model folder": str(args.model)}
    index = localizer_report(model, data, args.out, validation_data=val, prior_data=prior,
                             data_settings=spec, title=args.title, verbose=_verbose(args))
    print(f"wrote {index} ({len(data)} images); open it in a browser")
    return EXIT_OK


def _model_dir(path: Path) -> Path:
    """Accept both ``OUT`` of ``skcream train`` and ``OUT/model``."""
    return path / "model" if (path / "model").is_dir() else path


def _cmd_localize(args: argparse.Namespace) -> int:
    if args.post_hoc and args.model is not None:
        raise CLIError("--post-hoc uses the backbone's ImageNet classifier; drop --model")
    if not args.post_hoc and args.model is None:
        raise CLIError("give --model DIR (a trained model) or --post-hoc")
    if not args.post_hoc and (args.cam != "cam" or args.no_reactivate
                              or args.layer is not None):
        raise CLIError("--cam, --layer and --no-reactivate choose the map of --post-hoc; a "
                       "--model reads its own CAM")
    from skcream.data.files import display_path, file_problem

    for path in args.images:  # a FIFO is named, never opened (it would block)
        problem = file_problem(path)
        if problem is not None:
            raise CLIError(f"IMAGE {display_path(path)} {problem}")
    if args.post_hoc:
        if _verbose(args):
            print(f"loading the {args.backbone} ImageNet classifier (post-hoc, no training) ...",
                  flush=True)
        model = None
    else:
        model = _load_model(_model_dir(args.model), _device(args))
    width = len(str(len(args.images)))

    def report(done: int, total: int, rec: dict) -> None:
        score = "" if rec["score"] is None else f" ({rec['score']:.2f})"
        box = ", ".join(f"{v:.0f}" for v in rec["box"])
        print(f"[{done:{width}d}/{total}] {rec['image']}: {rec['class_name']}{score} "
              f"box [{box}]", flush=True)

    from skcream.distributed import distributed_inference

    with distributed_inference():  # --model under a launcher: images spread over processes
        records = localize_files(args.images, args.out, model=model, backbone=args.backbone,
                                 pretrained=args.pretrained, threshold=args.threshold,
                                 device=_device(args), batch_size=args.batch_size,
                                 verbose=_verbose(args), progress=report, cam=args.cam,
                                 reactivate=not args.no_reactivate,
                                 save_maps=args.save_maps, layer=args.layer)
    if not _is_main_process():
        return EXIT_OK
    print(f"wrote {len(records)} overlays and boxes.json to {args.out}")
    return EXIT_OK


# --------------------------------------------------------------------------- evaluate-maps
def _add_evaluate_maps(sub: Any) -> None:
    """``skcream evaluate-maps``: the reference evaluator's command line, on maps you have."""
    p = sub.add_parser(
        "evaluate-maps",
        help="score maps you already have (.npy per image), as wsolevaluation's evaluation.py",
        description=(
            "Score your own score maps with the WSOL protocol: a drop-in for wsolevaluation's "
            "evaluation.py (same folders in, the same numbers out).\n"
            "Reads <scoremap-root>/<image_id>.npy (or .png 8/16-bit heat maps, or an .npz "
            "bundle keyed by image id), 224x224 float maps in [0, 1], for every id of "
            "<metadata-root>/<dataset>/<split>/image_ids.txt; boxes from localization.txt "
            "scaled to 224 with image_sizes.txt (CUB, ILSVRC), masks under --mask-root "
            "(OpenImages).\nPrints MaxBoxAccV2 (multi-contour, mean over the IoU thresholds), "
            "MaxBoxAcc (largest contour, IoU 50), each IoU's accuracy and best CAM threshold, "
            "and PxAP where there are masks, beside an image-blind centre prior."
        ),
        formatter_class=_Formatter,
    )
    p.add_argument("--scoremap-root", type=Path, required=True,
                   help="folder of <image_id>.npy (or .png) maps, or an .npz bundle")
    p.add_argument("--metadata-root", type=Path, required=True,
                   help="folder holding <dataset>/<split>/image_ids.txt, image_sizes.txt, "
                        "localization.txt, class_labels.txt (wsolevaluation/metadata)")
    p.add_argument("--mask-root", type=Path, default=None,
                   help="OpenImages masks: the folder holding OpenImages/<mask path> (as the "
                        "reference's --mask_root), or the mask paths directly")
    p.add_argument("--dataset", required=True, choices=_WSOL_DATASETS, type=_wsol_dataset,
                   help="which benchmark's metadata (CUB and ILSVRC: boxes; OpenImages: masks)")
    p.add_argument("--split", default="test", help="metadata split (val = train-fullsup)")
    p.add_argument("--cam-curve-interval", type=_interval, default=0.01,
                   help="CAM thresholds np.arange(0, 1, interval): 0.01 (100) or 0.001 (1000)")
    p.add_argument("--iou-thresholds", type=_iou_percent, nargs="+", default=[30, 50, 70],
                   metavar="IOU", help="IoU thresholds in percent; MaxBoxAccV2 is the mean "
                                       "of the multi-contour MaxBoxAcc over them")
    p.add_argument("--resize-maps", action="store_true",
                   help="resize maps that are not 224x224 as the reference's inference.py "
                        "does (OpenCV bicubic, then min-max) instead of refusing them")
    p.add_argument("--n-jobs", type=_n_jobs, default=None, metavar="N",
                   help="threads reading and scoring maps (-1: all cores; identical numbers)")
    p.add_argument("--json", action="store_true",
                   help="print one JSON object: max_box_acc_v2, max_box_acc, pxap (null where "
                        "it does not apply), per_iou, thresholds, n_images, ...")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    _add_trust(p)
    p.set_defaults(func=_cmd_evaluate_maps)


def _wsol_dataset(value: str) -> str:
    """A dataset name in any case -> its canonical spelling (argparse's choices names the rest)."""
    return {d.lower(): d for d in _WSOL_DATASETS}.get(value.lower(), value)


_interval = _number_parser(float, lambda v: 1e-5 <= v < 1.0,
                           "a number in [1e-05, 1), e.g. 0.01 or 0.001")
_iou_percent = _number_parser(float, lambda v: 1.0 < v <= 100.0,
                              "a percentage in (1, 100], e.g. 50 for IoU >= 0.5")


def _cmd_evaluate_maps(args: argparse.Namespace) -> int:
    from skcream.metrics import evaluate_scoremaps
    from skcream.priors import centre_prior

    try:
        report = evaluate_scoremaps(
            args.scoremap_root, args.metadata_root, dataset=args.dataset, split=args.split,
            mask_root=args.mask_root, cam_curve_interval=args.cam_curve_interval,
            iou_thresholds=args.iou_thresholds, resize=args.resize_maps,
            baseline=centre_prior(), n_jobs=args.n_jobs, verbose=_verbose(args),
            allow_outside_root=args.allow_outside_root)
    except TypeError as exc:  # a wrong kind of input file, not a bug: as the other data errors
        raise ValueError(str(exc)) from exc
    if args.json:
        print(json.dumps(report, indent=2))
        return EXIT_OK
    print(_maps_table(report))
    return EXIT_OK


def _maps_table(report: dict[str, Any]) -> str:
    """The text output of ``skcream evaluate-maps``."""
    import numpy as np

    base = report["baseline"] or {}
    n_thr = len(np.arange(0, 1, report["cam_curve_interval"]))
    rows = []
    if report["max_box_acc_v2"] is not None:
        ious = "/".join(report["per_iou"])
        rows.append({"metric": f"MaxBoxAccV2 (multi-contour, IoU {ious})",
                     "maps": report["max_box_acc_v2"], "prior": base.get("max_box_acc_v2")})
        for key, value in report["per_iou"].items():
            rows.append({"metric": f"  IoU {key}", "maps": value,
                         "threshold": f"{report['thresholds'][key]:.4g}"})
        rows.append({"metric": "MaxBoxAcc (largest contour, IoU 50)",
                     "maps": report["max_box_acc"], "prior": base.get("max_box_acc"),
                     "threshold": f"{report['max_box_acc_threshold']:.4g}"})
    if report["pxap"] is not None:
        rows.append({"metric": "PxAP", "maps": report["pxap"], "prior": base.get("pxap")})
    head = (f"{report['dataset']} {report['split']}: {report['n_images']} maps, "
            f"{n_thr} CAM thresholds (interval {report['cam_curve_interval']:g})")
    if report["n_resized"]:
        head += f"; {report['n_resized']} maps resized to 224x224 (bicubic, min-max)"
    table = format_table(rows, ["metric", "maps", "prior", "threshold"],
                         headers=["metric", "your maps", "centre prior", "best threshold"])
    return (f"{head}\n{table}\n(the centre prior never looks at the image; percent, the "
            "reference's numbers)")


# --------------------------------------------------------------------------- entry point
def _run_command(args: argparse.Namespace) -> int | None:
    """Run the command under the torch thread rule of :mod:`skcream.threads` (``--threads N``:
    N threads); the demo applies it itself (it prints the count)."""
    if args.command == "demo" or not hasattr(args, "threads"):
        return args.func(args)
    from skcream.threads import torch_threads

    with torch_threads(args.threads):
        return args.func(args)


class _Terminated(BaseException):
    """SIGTERM arrived: unwinds like Ctrl-C, so locks are released and temporary files
    removed (Python's default SIGTERM ends the process without running any cleanup)."""


def _raise_terminated(signum, frame) -> None:
    raise _Terminated


@contextlib.contextmanager
def _sigterm_unwinds():
    """Turn SIGTERM into :class:`_Terminated` for the block (main thread only), then restore
    the previous handler."""
    try:
        previous = signal.signal(signal.SIGTERM, _raise_terminated)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``skcream`` command; returns the exit code.

    Parameters
    ----------
    argv : sequence of str, optional
        The arguments (default ``sys.argv[1:]``).
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    prog = f"skcream {args.command}"
    debug = os.environ.get("SKCREAM_DEBUG", "") not in ("", "0")
    try:
        with _sigterm_unwinds():
            return int(_run_command(args) or EXIT_OK)
    except _Terminated:
        print(f"{prog}: terminated (SIGTERM)", file=sys.stderr)
        return 128 + signal.SIGTERM
    except CLIError as exc:
        if debug:
            raise
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except (ValueError, OSError, ImportError, MemoryError, FloatingPointError) as exc:
        # What the library raises on bad data, files, no network, a missing optional package
        # or memory running out: the message names the argument / path / what to reduce.
        # Anything else is a bug and keeps its traceback.
        if debug:
            raise
        message = " ".join(str(exc).split()) or type(exc).__name__
        print(f"{prog}: error: {message}", file=sys.stderr)
        return EXIT_FAILURE


if __name__ == "__main__":
    sys.exit(main())
