"""Datasets: digits, .npz arrays, image folders, the fixed split and the normaliser (no torch)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from kubetune_trainer import data


def test_digits_load_as_images_without_a_download() -> None:
    x, y, k = data.load_arrays("digits")
    assert x.shape == (1797, 1, 8, 8)
    assert x.dtype == np.float32
    assert (y.min(), y.max(), k) == (0, 9, 10)


def test_the_split_is_stratified_disjoint_and_fixed() -> None:
    y = np.repeat(np.arange(4), [10, 20, 3, 1])
    train, val = data.stratified_split(y, 0.2)
    again = data.stratified_split(y, 0.2)
    assert np.array_equal(train, again[0])
    assert np.array_equal(val, again[1])
    assert set(train) | set(val) == set(range(len(y)))
    assert not set(train) & set(val)
    per_class = np.bincount(y[val], minlength=4)
    assert per_class.tolist() == [2, 4, 1, 0]  # a lone example stays in training
    assert not np.array_equal(val, data.stratified_split(y, 0.2, seed=1)[1])


def test_a_split_with_nothing_to_validate_is_refused() -> None:
    with pytest.raises(data.DataError, match="validation split is empty"):
        data.stratified_split(np.arange(5), 0.2)


def test_the_normaliser_is_fitted_per_channel() -> None:
    rng = np.random.default_rng(0)
    x = np.stack([rng.normal(5, 2, (50, 4, 4)), rng.normal(-1, 0.5, (50, 4, 4))], axis=1)
    shift, scale = data.fit_normalizer(x.astype(np.float32), "standard")
    z = (x - shift) / scale
    assert np.allclose(z.mean(axis=(0, 2, 3)), 0, atol=1e-5)
    assert np.allclose(z.std(axis=(0, 2, 3)), 1, atol=1e-4)
    lo, span = data.fit_normalizer(x.astype(np.float32), "minmax")
    m = (x - lo) / span
    assert np.allclose(m.min(axis=(0, 2, 3)), 0, atol=1e-6)
    assert np.allclose(m.max(axis=(0, 2, 3)), 1, atol=1e-6)
    flat = np.ones((10, 3), dtype=np.float32)  # constant features: no division by zero
    shift, scale = data.fit_normalizer(flat, "standard")
    assert np.all(scale == 1.0)
    assert shift.shape == (1, 3)


@pytest.mark.parametrize(
    ("x_shape", "expected"),
    [((30, 5), (5,)), ((30, 6, 7), (1, 6, 7)), ((30, 3, 6, 7), (3, 6, 7)),
     ((30, 6, 7, 3), (3, 6, 7))],
)
def test_npz_arrays_of_every_layout(tmp_path: Path, x_shape: tuple[int, ...],
                                    expected: tuple[int, ...]) -> None:
    path = tmp_path / "d.npz"
    rng = np.random.default_rng(1)
    np.savez(path, x=rng.normal(size=x_shape), y=np.array(["cat", "dog", "eel"] * 10))
    ds = data.load_dataset(str(path), val_fraction=0.2, normalize="standard")
    assert ds.sample_shape == expected
    assert ds.n_classes == 3
    assert len(ds.y_train) + len(ds.y_val) == 30
    assert len(ds.y_val) == 6


@pytest.mark.parametrize(
    ("arrays", "words"),
    [
        ({"x": np.zeros((4, 2))}, ["arrays named x and y", "found ['x']"]),
        ({"x": np.zeros((4, 2)), "y": np.arange(3)}, ["x has 4 examples but y has 3"]),
        ({"x": np.zeros((4, 2)), "y": np.zeros(4)}, ["1 class"]),
        ({"x": np.full((4, 2), np.nan), "y": np.arange(4)}, ["NaN or infinite"]),
        ({"x": np.zeros((4, 2, 2, 2, 2)), "y": np.arange(4)}, ["got shape (4, 2, 2, 2, 2)"]),
        ({"x": np.zeros((4, 2)), "y": np.array([0.5, 1, 2, 3])}, ["class labels"]),
    ],
)
def test_bad_npz_files_are_refused_clearly(tmp_path: Path, arrays: dict[str, np.ndarray],
                                           words: list[str]) -> None:
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(data.DataError) as caught:
        data.load_arrays(str(path))
    for word in [str(path), *words]:
        assert word in str(caught.value)


def test_missing_and_unknown_paths_are_refused(tmp_path: Path) -> None:
    with pytest.raises(data.DataError, match="no such file or folder"):
        data.load_arrays(str(tmp_path / "nothing.npz"))
    other = tmp_path / "data.csv"
    other.write_text("1,2\n")
    with pytest.raises(data.DataError, match=r"an \.npz file with arrays x and y"):
        data.load_arrays(str(other))


def _folder(root: Path, counts: dict[str, int]) -> None:
    for name, n in counts.items():
        (root / name).mkdir(parents=True)
        for i in range(n):
            (root / name / f"{i}.png").write_bytes(b"")


def test_an_image_folder_gives_one_class_per_subfolder(tmp_path: Path) -> None:
    _folder(tmp_path, {"b_dog": 3, "a_cat": 2})
    (tmp_path / "a_cat" / "notes.txt").write_text("not an image")

    def read(path: Path, size: int) -> np.ndarray:
        value = 1.0 if path.parent.name == "a_cat" else 2.0
        if path.parent.name == "b_dog" and path.stem == "0":
            return np.full((4, 5, 3), value)  # one colour image: greys become 3 channels
        return np.full((4, 5), value)

    x, y, k = data.load_image_folder(tmp_path, read_image=read)
    assert x.shape == (5, 3, 4, 5)
    assert (y.tolist(), k) == ([0, 0, 1, 1, 1], 2)  # classes in sorted folder order
    assert np.all(x[y == 0] == 1.0)


def test_an_image_folder_refuses_mixed_sizes_and_empty_classes(tmp_path: Path) -> None:
    _folder(tmp_path, {"a": 1, "b": 1})

    def read(path: Path, size: int) -> np.ndarray:
        return np.zeros((4, 4) if path.parent.name == "a" else (5, 5))

    with pytest.raises(data.DataError, match="set image_size"):
        data.load_image_folder(tmp_path, read_image=read)
    (tmp_path / "c").mkdir()
    with pytest.raises(data.DataError, match="'c' holds no images"):
        data.load_image_folder(tmp_path, read_image=read)


def test_an_image_folder_without_pillow_is_refused_clearly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _folder(tmp_path, {"a": 1, "b": 1})
    monkeypatch.setitem(sys.modules, "PIL", None)  # import PIL now fails
    with pytest.raises(data.DataError, match="Pillow is not installed"):
        data.load_arrays(str(tmp_path))
