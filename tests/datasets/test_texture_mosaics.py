"""crnn.datasets.make_texture_mosaics (issue 29's scene-labelling data),
checked against scikit-image's photographs and scipy's labelling of
connected regions."""
import numpy as np
import pytest

pytest.importorskip("skimage")
import skimage.data  # noqa: E402
import skimage.exposure  # noqa: E402
from scipy import ndimage  # noqa: E402

from crnn.datasets import make_texture_mosaics  # noqa: E402
from crnn.datasets._textures import TEXTURES  # noqa: E402


def _reference_texture(name):
    """The texture as the docstring defines it, computed here."""
    image = np.asarray(getattr(skimage.data, name)(), dtype=np.float64)
    if image.ndim == 3:
        image = image[:, :, :3].mean(axis=2)
    return skimage.exposure.equalize_hist(image, nbins=256)


def test_shapes_ranges_and_labels():
    X, y = make_texture_mosaics(30, size=24, random_state=0)
    assert X.shape == (30, 24, 24, 1) and X.dtype == np.float32
    assert y.shape == (30, 24, 24) and y.dtype == np.int64
    assert X.min() >= 0 and X.max() <= 1
    assert set(np.unique(y)) <= set(range(len(TEXTURES)))
    assert all(len(np.unique(labels)) >= 2 for labels in y)
    X64, _ = make_texture_mosaics(2, size=8, random_state=0, dtype=np.float64)
    assert X64.dtype == np.float64


def test_regions_are_voronoi_cells():
    """Voronoi cells are convex, so an image of at most k regions has at most
    k connected regions of equal label (4-connectivity)."""
    for low, high in [(1, 1), (2, 3), (5, 8)]:
        _, y = make_texture_mosaics(20, size=32, n_regions=(low, high), random_state=1)
        for labels in y:
            parts = sum(ndimage.label(labels == t)[1] for t in np.unique(labels))
            assert parts <= high
        if low == high == 1:
            assert all(len(np.unique(labels)) == 1 for labels in y)


@pytest.mark.parametrize("half", ["train", "test"])
def test_windows_come_from_their_half_only(half):
    """A one-region image is one window of one texture: found in its half of
    the photograph, and not in the other half."""
    size = 12
    names = ["grass", "moon"]
    X, y = make_texture_mosaics(6, size=size, textures=names, n_regions=(1, 1),
                                half=half, random_state=2)
    for image, labels in zip(X[:, :, :, 0], y):
        ref = _reference_texture(names[labels[0, 0]])
        w = ref.shape[1] // 2
        halves = {"train": ref[:, :w], "test": ref[:, w:2 * w]}
        found = {}
        for name, part in halves.items():
            windows = np.lib.stride_tricks.sliding_window_view(part, (size, size))
            diff = np.abs(windows - image.astype(np.float64)).max(axis=(2, 3))
            found[name] = bool((diff < 1e-6).any())
        assert found[half] and not found["test" if half == "train" else "train"]


def test_textures_are_equalised():
    """Over each photograph the grey levels spread evenly over [0, 1]: no
    texture is brighter or more contrasted than another overall."""
    from crnn.datasets._textures import texture
    for name in TEXTURES:
        assert np.array_equal(texture(name), _reference_texture(name))
        ref = _reference_texture(name)
        assert abs(ref.mean() - 0.5) < 0.03 and abs(ref.std() - np.sqrt(1 / 12)) < 0.02


def test_reproducible_and_halves_differ():
    a = make_texture_mosaics(5, size=16, random_state=7)
    b = make_texture_mosaics(5, size=16, random_state=7)
    assert all(np.array_equal(u, v) for u, v in zip(a, b))
    c = make_texture_mosaics(5, size=16, random_state=8)
    assert not np.array_equal(a[1], c[1])
    t = make_texture_mosaics(5, size=16, half="test", random_state=7)
    assert not any(np.array_equal(u, v) for u, v in zip(a[1], t[1]))   # no shared layout


@pytest.mark.parametrize("kwargs, match", [
    ({"n_images": 0}, "n_images"),
    ({"size": 300}, "size"),
    ({"size": 2.5}, "size"),
    ({"textures": ["bricks"]}, "unknown texture 'bricks'"),
    ({"textures": "brick"}, "list of names"),
    ({"textures": []}, "at least one"),
    ({"n_regions": (3, 2)}, r"n_regions\[1\]"),
    ({"n_regions": 3}, "pair"),
    ({"n_regions": (0, 2)}, r"n_regions\[0\]"),
    ({"half": "validation"}, "half"),
    ({"textures": ["brick", "grass", "brick"]}, "twice"),
    ({"dtype": np.int32}, "floating-point"),
    ({"dtype": "not a type"}, "dtype"),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_texture_mosaics(**{"n_images": 2, "size": 8, **kwargs})
