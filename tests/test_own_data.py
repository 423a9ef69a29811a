"""Your own data: ``folder:DIR`` image folders and ``points:FILE`` 2D/tabular files, read, split, resized
and refused as documented (introzoo/data/folder.py, introzoo/data/points.py)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from introzoo import plugins
from introzoo.cli import main
from introzoo.spec import resolve
from introzoo.testing import check_component

SIDE = 12


def dataset(spec: str):
    comp, cfg = resolve(plugins.registry(), "datasets", spec)
    return comp.build(cfg)


def write_images(folder: Path, n: int, mode: str, seed: int, size: tuple[int, int] = (SIDE, SIDE)) -> list[np.ndarray]:
    """``n`` random ``mode`` ("RGB" or "L") PNGs ``0.png``.. in ``folder``, ``size`` = (width, height);
    returns their pixels as (C, H, W)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        shape = (size[1], size[0], 3) if mode == "RGB" else (size[1], size[0])
        a = rng.integers(0, 256, shape, dtype=np.uint8)
        Image.fromarray(a, mode).save(folder / f"{i}.png")
        out.append(a.transpose(2, 0, 1) if a.ndim == 3 else a[None])
    return out


@pytest.fixture
def tree(tmp_path) -> Path:
    """Two classes: ``cats`` (RGB) and ``dogs`` (grey), 6 images of 12x12 each."""
    root = tmp_path / "tree"
    write_images(root / "cats", 6, "RGB", 0)
    write_images(root / "dogs", 6, "L", 1)
    return root


def as_rgb(a: np.ndarray) -> np.ndarray:
    return np.repeat(a, 3, axis=0) if a.shape[0] == 1 else a


def all_images(ds) -> tuple[torch.Tensor, torch.Tensor]:
    (xa, ya), (xb, yb) = ds.images("train"), ds.images("test")
    return torch.cat([xa, xb]), torch.cat([ya, yb])


def test_class_subfolders_give_labels_shapes_and_detected_channels(tree):
    ds = dataset(f"folder:{tree}")
    assert ds.kind == "image" and ds.shape == (3, SIDE, SIDE) and ds.classes == ["cats", "dogs"]
    assert (ds.n_train, ds.n_test) == (11, 1)
    x, y = all_images(ds)
    assert x.dtype == torch.uint8 and y.dtype == torch.int64 and x.shape == (12, 3, SIDE, SIDE)
    expected = {}
    for label, name in enumerate(["cats", "dogs"]):
        for i in range(6):
            a = np.asarray(Image.open(tree / name / f"{i}.png").convert("RGB")).transpose(2, 0, 1)
            expected[a.tobytes()] = label
    got = {x[i].numpy().tobytes(): int(y[i]) for i in range(12)}
    assert got == expected
    # every image grey: one channel, the pixels unchanged
    grey = dataset(f"folder:{tree / 'dogs'}")
    assert grey.shape == (1, SIDE, SIDE) and grey.classes == []
    gx, gy = all_images(grey)
    want = sorted(np.asarray(Image.open(tree / "dogs" / f"{i}.png")).tobytes() for i in range(6))
    assert sorted(gx[i, 0].numpy().tobytes() for i in range(6)) == want and int(gy.abs().sum()) == 0
    # channels=1 converts the RGB images to grey as PIL does
    forced = dataset(f"folder:{tree},channels=1")
    assert forced.shape == (1, SIDE, SIDE)
    fx, _ = all_images(forced)
    lum = {np.asarray(Image.open(tree / "cats" / f"{i}.png").convert("L")).tobytes() for i in range(6)}
    assert lum <= {fx[i, 0].numpy().tobytes() for i in range(12)}


def test_resize_and_centre_crop_match_pil(tmp_path):
    root = tmp_path / "mixed"
    write_images(root / "a", 3, "RGB", 2, size=(12, 16))  # portrait: width 12, height 16
    write_images(root / "b", 3, "RGB", 3, size=(20, 10))  # landscape
    ds = dataset(f"folder:{root},size=6")
    assert ds.shape == (3, 6, 6)
    x, _ = all_images(ds)
    got = {x[i].numpy().tobytes() for i in range(6)}
    want = set()
    for name, (w, h) in (("a", (12, 16)), ("b", (20, 10))):
        for i in range(3):
            img = Image.open(root / name / f"{i}.png")
            nw, nh = (6, int(6 * h / w)) if w <= h else (int(6 * w / h), 6)  # shorter side to 6
            img = img.resize((nw, nh), Image.BILINEAR)
            left, top = int(round((nw - 6) / 2)), int(round((nh - 6) / 2))
            want.add(np.asarray(img.crop((left, top, left + 6, top + 6))).transpose(2, 0, 1).tobytes())
    assert got == want


def test_split_sizes_determinism_and_subset(tmp_path):
    root = tmp_path / "flat"
    write_images(root, 20, "L", 4)
    a, b = dataset(f"folder:{root}"), dataset(f"folder:{root}")
    assert (a.n_train, a.n_test) == (18, 2)
    for split in ("train", "test"):
        assert all(torch.equal(u, v) for u, v in zip(a.images(split), b.images(split)))
    other = dataset(f"folder:{root},seed=1")
    assert not torch.equal(a.images("test")[0], other.images("test")[0])
    quarter = dataset(f"folder:{root},test_fraction=0.25")
    assert (quarter.n_train, quarter.n_test) == (15, 5)
    sub = dataset(f"folder:{root},subset=4")
    assert sub.n_train == 4 and torch.equal(sub.images("train")[0], a.images("train")[0][:4])
    assert int(a.images("train")[1].abs().sum()) == 0  # flat folder: labels 0


def test_train_and_test_subfolders_are_the_split(tmp_path):
    root = tmp_path / "split"
    write_images(root / "train" / "x", 4, "L", 5)
    write_images(root / "train" / "y", 3, "L", 6)
    test_y = write_images(root / "test" / "y", 2, "L", 7)
    ds = dataset(f"folder:{root}")
    assert (ds.n_train, ds.n_test) == (7, 2) and ds.classes == ["x", "y"]
    x, y = ds.images("test")
    assert y.tolist() == [1, 1]
    assert {x[i].numpy().tobytes() for i in range(2)} == {a.tobytes() for a in test_y}


def test_dataset_contract(tree, tmp_path):
    check_component("datasets", "folder", options={"path": str(tree)})
    csv = tmp_path / "p.csv"
    np.savetxt(csv, np.random.default_rng(0).normal(size=(40, 2)), delimiter=",")
    check_component("datasets", "points", options={"path": str(csv)})
    npy = tmp_path / "p.npy"
    np.save(npy, np.random.default_rng(0).normal(size=(40, 5)))
    check_component("datasets", "points", options={"path": str(npy)})


def test_points_from_csv_and_npy_with_and_without_header(tmp_path):
    data = np.random.default_rng(1).normal(size=(30, 2)).astype(np.float32)
    np.save(tmp_path / "p.npy", data)
    np.savetxt(tmp_path / "plain.csv", data, delimiter=",", fmt="%.9g")
    np.savetxt(tmp_path / "header.csv", data, delimiter=",", fmt="%.9g", header="x, y", comments="")
    sets = [dataset(f"points:{tmp_path / name}") for name in ("p.npy", "plain.csv", "header.csv")]
    for ds in sets:
        assert ds.kind == "2d" and ds.shape == (2,) and (ds.n_train, ds.n_test) == (27, 3)
        assert ds.metric_range == pytest.approx(1.1 * float(ds.points("train").abs().max()))
        for split in ("train", "test"):
            assert torch.equal(ds.points(split), sets[0].points(split))
    rows = torch.cat([sets[0].points("train"), sets[0].points("test")])
    assert sorted(map(tuple, rows.tolist())) == sorted(map(tuple, torch.from_numpy(data).tolist()))
    std = dataset(f"points:{tmp_path / 'p.npy'},standardize=true").points("train")
    assert torch.allclose(std.mean(0), torch.zeros(2), atol=1e-5)
    assert torch.allclose(std.std(0, unbiased=False), torch.ones(2), atol=1e-5)
    wide = tmp_path / "wide.npy"
    np.save(wide, np.zeros((10, 4)))
    ds = dataset(f"points:{wide},test_fraction=0")
    assert ds.kind == "tabular" and ds.shape == (4,) and ds.metric_range is None and ds.n_test == 0
    assert ds.default_backbone == "mlp"


def _garbage(p: Path) -> None:
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(b"not an image")


def _mixed(root: Path) -> None:
    write_images(root / "a", 2, "L", 0, size=(12, 12))
    write_images(root / "b", 2, "L", 1, size=(12, 16))


def _csv(text: str):
    def setup(p: Path) -> None:
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)

    return setup


BAD = [
    ("folder", "missing", None, "does not exist"),
    ("folder", "empty", lambda p: p.mkdir(), "holds no images"),
    ("folder", "unreadable", lambda p: (write_images(p, 2, "L", 0), _garbage(p / "x.png")), "cannot read"),
    ("folder", "mixed", _mixed, "size=N"),
    ("points", "missing.csv", None, "does not exist"),
    ("points", "text.csv", _csv("x,y\n1,2\nthree,4\n"), "line 3: 'three' is not a number"),
    ("points", "ragged.csv", _csv("1,2\n3,4,5\n"), "line 2: 3 columns"),
    ("points", "p.txt", _csv("1,2\n"), "expected a .npy or .csv"),
    ("points", "broken.npy", _csv("not numpy"), "cannot read it"),
]


@pytest.mark.parametrize("kind,name,setup,words", BAD, ids=[f"{k}:{n}" for k, n, _, _ in BAD])
def test_bad_data_is_one_line_exit_2(kind, name, setup, words, tmp_path, capsys):
    target = tmp_path / name
    if setup is not None:
        setup(target)
    out = tmp_path / "run"
    capsys.readouterr()
    rc = main(["run", "-d", f"{kind}:{target}", "-n", "5", "--threads", "1", "-q", "--out", str(out)])
    err = capsys.readouterr().err
    assert rc == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and "Traceback" not in err, err
    assert str(target) in err and words in err, err
    assert not out.exists()


def test_runs_on_a_folder_and_on_points(tmp_path):
    root = tmp_path / "imgs"
    write_images(root / "cats", 12, "RGB", 0)
    write_images(root / "dogs", 12, "RGB", 1)
    out = tmp_path / "folder-run"
    assert (
        main(["run", "-d", f"folder:{root}", "-n", "30", "--threads", "1", "-q", "--metric", "knn5", "--out", str(out)]) == 0
    )
    metrics = json.loads((out / "metrics.json").read_text())["metrics"]
    assert 0 <= metrics["knn5"] <= 1
    csv = tmp_path / "p.csv"
    np.savetxt(csv, np.random.default_rng(0).normal(size=(300, 2)), delimiter=",", header="x,y", comments="")
    out = tmp_path / "points-run"
    assert (
        main(
            [
                "run",
                "-d",
                f"points:{csv}",
                "-n",
                "50",
                "--threads",
                "1",
                "-q",
                "--metric",
                "kl,n_samples=200",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    assert np.isfinite(json.loads((out / "metrics.json").read_text())["metrics"]["kl"])


def test_celeba_offline_is_one_line(tmp_path, capsys):
    rc = main(
        ["run", "-d", "celeba,download=false", "-n", "1", "--data-root", str(tmp_path), "-q", "--out", str(tmp_path / "run")]
    )
    err = capsys.readouterr().err
    assert rc == 2 and "dataset 'celeba' is not under" in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "run").exists()


def test_celeba_is_resized_and_cropped_with_male_labels(tmp_path, monkeypatch):
    """A stand-in for CelebA's files (torchvision checks their md5 sums, switched off here)."""
    import torchvision.datasets as tvd

    from introzoo.data import images

    base = tmp_path / "celeba"
    faces = write_images(base / "img_align_celeba", 5, "RGB", 8, size=(178, 218))
    names = [f"{i}.png" for i in range(5)]
    (base / "list_eval_partition.txt").write_text("".join(f"{n} {s}\n" for n, s in zip(names, (0, 0, 1, 2, 2))))
    (base / "identity_CelebA.txt").write_text("".join(f"{n} {i}\n" for i, n in enumerate(names)))
    (base / "list_bbox_celeba.txt").write_text(
        "5\nimage_id x_1 y_1 width height\n" + "".join(f"{n} 1 2 3 4\n" for n in names)
    )
    (base / "list_landmarks_align_celeba.txt").write_text("5\nlefteye_x lefteye_y\n" + "".join(f"{n} 1 2\n" for n in names))
    (base / "list_attr_celeba.txt").write_text(
        "5\nSmiling Male\n" + "".join(f"{n} 1 {m}\n" for n, m in zip(names, (1, -1, 1, 1, -1)))
    )
    monkeypatch.setattr(tvd.CelebA, "_check_integrity", lambda self: True)
    monkeypatch.setenv("INTROZOO_DATA_ROOT", str(tmp_path))
    ds = images.CelebA(images.CelebAConfig(size=16, download=False))
    x, y = ds.images("train")
    xt, yt = ds.images("test")
    assert ds.shape == (3, 16, 16) and x.shape == (2, 3, 16, 16) and xt.shape == (2, 3, 16, 16)
    assert y.tolist() == [1, 0] and yt.tolist() == [1, 0]
    img = Image.fromarray(faces[0].transpose(1, 2, 0)).resize((16, int(16 * 218 / 178)), Image.BILINEAR)
    top = int(round((img.size[1] - 16) / 2))
    assert np.array_equal(x[0].numpy(), np.asarray(img.crop((0, top, 16, top + 16))).transpose(2, 0, 1))


def test_cached_classifiers_of_two_folders_differ(tmp_path):
    from introzoo.extractors.classifier import ClassifierConfig, _key

    write_images(tmp_path / "a", 4, "L", 0)
    write_images(tmp_path / "b", 4, "L", 1)
    a, b = dataset(f"folder:{tmp_path / 'a'}"), dataset(f"folder:{tmp_path / 'b'}")
    assert _key(a, ClassifierConfig()) != _key(b, ClassifierConfig())
    assert _key(a, ClassifierConfig()) == _key(dataset(f"folder:{tmp_path / 'a'}"), ClassifierConfig())
