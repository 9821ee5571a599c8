"""Datasets for sequence models, generated or read from the machine.

- ``make_adding_problem``: the adding problem (long-range memory).
- ``make_spoken_digits``, ``spoken_digit_voices``, ``split_voices``: spoken
  digit strings synthesised by espeak-ng, as MFCC frames with transcripts.
- ``make_number_phrases``, ``make_dates``: sentence pairs to translate
  (numbers in English words to French, dates in many formats to ISO).
- ``gettext_pairs``: English -> another language's sentence pairs from the
  gettext catalogs installed on the machine.
- ``make_texture_mosaics``: images of textured regions with a label per
  pixel, for scene labelling (scikit-image's bundled photographs).
- ``make_car_racing``: camera frames of gymnasium's CarRacing-v3 and an
  expert driver's steering at each, for steering from images.
"""
import numpy as np
from sklearn.utils import check_random_state

from ._car_racing import make_car_racing
from ._spoken_digits import make_spoken_digits, spoken_digit_voices, split_voices
from ._textures import make_texture_mosaics
from ._translation import gettext_pairs, make_dates, make_number_phrases

__all__ = ["gettext_pairs", "make_adding_problem", "make_car_racing", "make_dates",
           "make_number_phrases",
           "make_spoken_digits", "make_texture_mosaics", "spoken_digit_voices",
           "split_voices"]


def make_adding_problem(n_samples=1000, n_timesteps=100, random_state=None,
                        dtype=np.float32):
    """The adding problem (Hochreiter & Schmidhuber, 1997): a test of memory
    over long spans.

    Each sequence has two channels: values uniform in [0, 1], and a marker
    that is 1 at one random step in the first half and one in the second
    half.  The target is the sum of the two marked values.  Always
    predicting 1 gives a mean squared error of about 1/6.

    Parameters
    ----------
    n_samples : int, default=1000
    n_timesteps : int, default=100
        At least 2.
    random_state : int, RandomState or None, default=None
    dtype : numpy dtype, default=numpy.float32

    Returns
    -------
    X : ndarray of shape (n_samples, n_timesteps, 2)
    y : ndarray of shape (n_samples,)

    Examples
    --------
    >>> import numpy as np
    >>> from crnn.datasets import make_adding_problem
    >>> X, y = make_adding_problem(n_samples=100, n_timesteps=50, random_state=0)
    >>> X.shape, y.shape, X.dtype
    ((100, 50, 2), (100,), dtype('float32'))
    >>> X[:, :, 1].sum(axis=1)[:5]          # two marked steps per sequence
    array([2., 2., 2., 2., 2.], dtype=float32)
    >>> bool(np.allclose(y, (X[:, :, 0] * X[:, :, 1]).sum(axis=1)))
    True
    """
    n_samples = int(n_samples)
    n_timesteps = int(n_timesteps)
    if n_samples < 1 or n_timesteps < 2:
        raise ValueError("make_adding_problem needs n_samples >= 1 and n_timesteps >= 2, "
                         f"got {n_samples} and {n_timesteps}.")
    rng = check_random_state(random_state)
    X = np.zeros((n_samples, n_timesteps, 2), dtype=dtype)
    X[:, :, 0] = rng.uniform(0, 1, (n_samples, n_timesteps))
    rows = np.arange(n_samples)
    first = rng.randint(0, n_timesteps // 2, n_samples)
    second = rng.randint(n_timesteps // 2, n_timesteps, n_samples)
    X[rows, first, 1] = 1
    X[rows, second, 1] = 1
    return X, X[rows, first, 0] + X[rows, second, 0]
