"""Texture mosaics for scene labelling (issue 29): photographs that
scikit-image ships, cut into random Voronoi regions with a label per pixel.

The classic texture-segmentation task: a small patch of brick and one of
gravel can look alike, and the context around a pixel decides which it is.
Each texture is one of scikit-image's bundled photographs (no download),
turned to grey and histogram-equalised over the whole photograph, so that
no texture is brighter or more contrasted than another overall: each one's
grey levels are spread evenly over [0, 1].  (A window can still be brighter
than its photograph's average: the moon's light falls from one side, the
Hubble field is mostly dark sky.)  Training and test images come from disjoint halves of each photo
(the left half of its columns, and the right half), so a test mosaic shows
texture its model never saw.
"""
import numpy as np
from sklearn.utils import check_random_state

from .._base.params import check_int_arg

# name -> the scikit-image loader (skimage.data.<name>); each photograph is
# a texture over its whole frame
TEXTURES = ("brick", "grass", "gravel", "moon", "immunohistochemistry",
            "hubble_deep_field")

_HALVES = ("train", "test")
_cache = {}


def _skimage():
    try:
        import skimage.data
        import skimage.exposure
    except ImportError as exc:
        raise ImportError("make_texture_mosaics needs scikit-image "
                          "(pip install scikit-image, or crnn[vision]).") from exc
    return skimage


def texture(name):
    """One texture as scikit-image ships it, grey (the mean of its colour
    channels) and histogram-equalised: float64 of shape (H, W) in [0, 1]."""
    if name not in TEXTURES:
        raise ValueError(f"unknown texture {name!r}; the textures are {list(TEXTURES)}.")
    if name not in _cache:
        skimage = _skimage()
        image = np.asarray(getattr(skimage.data, name)(), dtype=np.float64)
        if image.ndim == 3:
            image = image[:, :, :3].mean(axis=2)
        _cache[name] = skimage.exposure.equalize_hist(image, nbins=256)
    return _cache[name]


def _half(image, half):
    """The training half (left columns) or the test half (right columns)."""
    w = image.shape[1] // 2
    return image[:, :w] if half == "train" else image[:, w:2 * w]


def make_texture_mosaics(n_images=100, size=64, *, textures=None, n_regions=(2, 6),
                         half="train", random_state=None, dtype=np.float32):
    """Images made of textured regions, with the texture of every pixel.

    Each image is a Voronoi tessellation of ``size`` x ``size`` pixels
    around k random seeds (k drawn uniformly from ``n_regions``); each
    region shows one texture, drawn at random so that an image of two
    regions or more holds at least two textures (where two are given), from
    a random window of that texture's half of its photograph: regions of
    the same texture in an image share one window.

    Parameters
    ----------
    n_images : int, default=100
        Images to make, 1 to 1,000,000.
    size : int, default=64
        Height and width of each image, 4 to 256 (half the width of the
        smallest photograph used).
    textures : list of str, default=None
        Names of scikit-image's photographs, any of "brick", "grass",
        "gravel", "moon", "immunohistochemistry" and "hubble_deep_field"
        (the default: all six, in this order).  The labels index this list.
    n_regions : tuple of two ints, default=(2, 6)
        The least and the most regions of an image, 1 <= low <= high <= 64.
    half : {"train", "test"}, default="train"
        Which half of each photograph the windows come from: "train" the
        left half of its columns, "test" the right half.
    random_state : int, RandomState or None, default=None
        The layouts, textures and windows.  The test half draws from
        another stream than the training half of the same ``random_state``,
        so the two never share a layout.
    dtype : numpy dtype, default=numpy.float32

    Returns
    -------
    X : ndarray of shape (n_images, size, size, 1)
        Grey levels in [0, 1], channels last.
    y : ndarray of shape (n_images, size, size), int64
        The texture of each pixel, an index into ``textures``.

    Examples
    --------
    >>> import numpy as np
    >>> from crnn.datasets import make_texture_mosaics
    >>> X, y = make_texture_mosaics(10, size=32, random_state=0)
    >>> X.shape, X.dtype, y.shape
    ((10, 32, 32, 1), dtype('float32'), (10, 32, 32))
    >>> bool(X.min() >= 0 and X.max() <= 1)
    True
    >>> all(len(np.unique(labels)) >= 2 for labels in y)
    True
    >>> Xt, yt = make_texture_mosaics(5, size=32, half="test", random_state=0)
    """
    n_images = check_int_arg(n_images, "n_images", 1, 1_000_000)
    size = check_int_arg(size, "size", 4, 256)
    if textures is None:
        textures = list(TEXTURES)
    elif isinstance(textures, str) or not hasattr(textures, "__len__"):
        raise ValueError(f"textures must be a list of names from {list(TEXTURES)}; "
                         f"got {textures!r}.")
    textures = list(textures)
    if not textures:
        raise ValueError("textures must name at least one texture.")
    for name in textures:
        if not isinstance(name, str) or name not in TEXTURES:
            raise ValueError(f"unknown texture {name!r}; the textures are {list(TEXTURES)}.")
    if len(set(textures)) != len(textures):
        raise ValueError(f"textures names a texture twice: {textures!r}.")
    try:
        floating = np.dtype(dtype).kind == "f"
    except TypeError:
        floating = False
    if not floating:
        raise ValueError(f"dtype must be a floating-point type; got {dtype!r}.")
    if (not isinstance(n_regions, (tuple, list)) or len(n_regions) != 2):
        raise ValueError(f"n_regions must be a pair (low, high); got {n_regions!r}.")
    low = check_int_arg(n_regions[0], "n_regions[0]", 1, 64)
    high = check_int_arg(n_regions[1], "n_regions[1]", low, 64)
    if half not in _HALVES:
        raise ValueError(f"half must be 'train' or 'test'; got {half!r}.")
    # the two halves draw from different streams of one random_state, so a
    # training and a test set made with the same seed share no label map
    # (a model that memorised the training layouts would score on those)
    rng = np.random.RandomState(
        check_random_state(random_state).randint(0, 2**31 - 1, 2)[_HALVES.index(half)])

    sources = [_half(texture(name), half) for name in textures]
    X = np.empty((n_images, size, size, 1), dtype=dtype)
    y = np.empty((n_images, size, size), dtype=np.int64)
    rows, cols = np.mgrid[0:size, 0:size]
    pixels = np.stack([rows.ravel(), cols.ravel()], axis=1).astype(np.float64)
    n_tex = len(textures)
    for i in range(n_images):
        k = rng.randint(low, high + 1)
        seeds = rng.uniform(0, size, (k, 2))
        d2 = ((pixels[:, None, :] - seeds[None, :, :]) ** 2).sum(axis=2)
        cell = np.argmin(d2, axis=1).reshape(size, size)
        present = np.unique(cell)        # (a seed may own no pixel)
        labels = rng.randint(0, n_tex, k)
        while present.size >= 2 and n_tex >= 2 and np.unique(labels[present]).size < 2:
            labels = rng.randint(0, n_tex, k)
        y[i] = labels[cell]
        image = X[i, :, :, 0]
        for t in np.unique(y[i]):
            src = sources[t]
            r = rng.randint(0, src.shape[0] - size + 1)
            c = rng.randint(0, src.shape[1] - size + 1)
            window = src[r:r + size, c:c + size]
            mask = y[i] == t
            image[mask] = window[mask]
    return X, y
