"""The ``adaptertune-lite`` command: ``doctor`` checks a setup, ``pretrain`` builds the kit backbone."""

from __future__ import annotations

import argparse
import sys
from dataclasses import fields


def doctor() -> int:
    """Print what the course needs and whether it is here. Returns 0 when everything needed is present."""
    from . import backbones, data, runtime

    problems = []
    print("adaptertune_lite doctor")
    for pkg, ver in runtime.versions().items():
        print(f"  {pkg:<18} {ver}")
        if ver == "not installed" and pkg != "adaptertune_lite":
            problems.append(f"{pkg} is not installed")
    print(f"  device             {runtime.describe_device()}")
    print(f"  FAST mode          {'on' if runtime.fast_mode() else 'off'} (set ADAPTERTUNE_FAST=0/1 to choose)")
    print("offline assets")
    for name in backbones.KIT_BACKBONES:
        try:
            backbones.load_backbone(name, num_classes=10)
            prov = backbones.kit_provenance(name)
            print(f"  [ok] {name}: weights verified (sha256 {prov['sha256'][:12]}..., pretraining held-out acc {prov['heldout_accuracy']:.3f})")
        except (FileNotFoundError, ValueError) as err:
            print(f"  [missing] {name}: {err}")
            problems.append(f"kit backbone {name}")
    for name in ("mnist5k", "digits"):
        try:
            splits = data.load_dataset(name)
            print(f"  [ok] {splits}")
        except Exception as err:  # report every failure, never crash the doctor
            print(f"  [missing] {name}: {type(err).__name__}: {err}")
            problems.append(f"dataset {name}")
    root = data.data_root()
    present = sorted(p.name for p in root.iterdir()) if root.is_dir() else []
    print(f"downloaded data in {root}: {', '.join(present) or 'none'}")
    online = backbones.hub_reachable()
    print(f"online (huggingface.co reachable): {'yes' if online else 'no: use the kit backbone and offline datasets'}")
    if problems:
        print("\nMISSING: " + "; ".join(problems) + ". Run `make lab` (or `pip install -e .`) in the repository to repair.")
        return 1
    print("\nAll set.")
    return 0


def main(argv: list[str] | None = None) -> int:
    from .pretrain import PretrainConfig

    parser = argparse.ArgumentParser(prog="adaptertune-lite", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("doctor", help="check versions, device, FAST mode, offline assets and connectivity")
    p = sub.add_parser("pretrain", help="pretrain a kit backbone on procedural images")
    for f in fields(PretrainConfig):
        p.add_argument(f"--{f.name.replace('_', '-')}", type=type(f.default), default=f.default, help=f"(default {f.default})")
    p.add_argument("--out", default=None, help="output folder (default: the package's weights folder)")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    args = parser.parse_args(argv)

    if args.command == "doctor":
        return doctor()
    from .pretrain import pretrain

    cfg = PretrainConfig(**{f.name: getattr(args, f.name) for f in fields(PretrainConfig)})
    prov = pretrain(cfg, out_dir=args.out, device=args.device, progress=sys.stderr.isatty())
    print(f"wrote {cfg.backbone}: held-out accuracy {prov['heldout_accuracy']:.3f} after {prov['images_seen']:,} images, {prov['wall_time_s']} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
