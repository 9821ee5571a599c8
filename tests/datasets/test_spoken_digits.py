"""The spoken-digits corpus (crnn.datasets.make_spoken_digits): espeak-ng
speech, MFCC frames, held-out voices; and RNNTranscriber learning it.
Skips without the espeak-ng program or librosa (.ci/run installs both)."""
import os
import warnings

import numpy as np
import pytest

import crnn
from crnn.datasets import make_spoken_digits, spoken_digit_voices, split_voices
from crnn.datasets._spoken_digits import ACCENTS, VARIANTS, espeak_available

pytestmark = [
    pytest.mark.skipif(not espeak_available(), reason="the espeak-ng program is not installed"),
    pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning"),
]
librosa = pytest.importorskip("librosa", reason="librosa computes the MFCCs")


def test_corpus_shapes_transcripts_and_normalisation():
    X, y, voices = make_spoken_digits(12, random_state=0, return_voices=True, min_digits=2,
                                      max_digits=5)
    assert len(X) == len(y) == len(voices) == 12
    for x, t, v in zip(X, y, voices):
        assert x.dtype == np.float32 and x.flags.c_contiguous and x.shape[1] == 39
        assert x.shape[0] >= 20                       # speech of 2+ digits: >= 0.2 s
        assert t.isdigit() and 2 <= len(t) <= 5
        assert v in spoken_digit_voices()
        np.testing.assert_allclose(x.mean(axis=0), 0, atol=1e-4)
        np.testing.assert_allclose(x.std(axis=0), 1, atol=1e-2)
    # more digits, longer speech
    lens = np.array([len(x) for x in X])
    nd = np.array([len(t) for t in y])
    assert np.corrcoef(lens, nd)[0, 1] > 0.3
    X13, _ = make_spoken_digits(2, deltas=False, n_mfcc=13, random_state=0,
                                dtype=np.float64)
    assert X13[0].shape[1] == 13 and X13[0].dtype == np.float64


def test_deterministic_and_independent_of_n_jobs():
    a = make_spoken_digits(6, random_state=3)
    b = make_spoken_digits(6, random_state=3, n_jobs=2)
    c = make_spoken_digits(6, random_state=4)
    assert a[1] == b[1]
    assert all(np.array_equal(u, v) for u, v in zip(a[0], b[0]))
    assert a[1] != c[1]


def test_voices_and_held_out_variants():
    voices = spoken_digit_voices()
    assert len(voices) == len(ACCENTS) * len(VARIANTS) and len(VARIANTS) == 97
    train, test = split_voices(voices, 6, random_state=0)
    tv = {v.split("+")[1] for v in test}
    assert len(tv) == 6 and not tv & {v.split("+")[1] for v in train}
    assert len(test) == 6 * len(ACCENTS) and len(train) + len(test) == len(voices)
    assert split_voices(voices, 6, random_state=0) == (train, test)
    _, y, used = make_spoken_digits(8, voices=test[:2], random_state=0, return_voices=True)
    assert set(used) <= set(test[:2])
    # the same digits in two voices give different audio
    same = dict(random_state=5, min_digits=3, max_digits=3, speed=(150, 150), pitch=(50, 50))
    Xa, ya = make_spoken_digits(1, voices=["en-us+m3"], **same)
    Xb, yb = make_spoken_digits(1, voices=["en-gb+f2"], **same)
    assert ya == yb and not (Xa[0].shape == Xb[0].shape and np.allclose(Xa[0], Xb[0]))
    # every default voice is a voice of its own: no two give the same audio
    # for the same digits (espeak-ng ignores variants after "en-gb", and some
    # variants are copies of others)
    from crnn.datasets._spoken_digits import _speak, espeak_program
    seen = {}
    for v in dict.fromkeys(spoken_digit_voices(accents=["en", "en-us"])
                           + spoken_digit_voices(variants=["m3"])):
        wave, _ = _speak(espeak_program(), "3 1 4", v, 150, 50)
        key = wave.tobytes()
        assert key not in seen, (v, seen.get(key))
        seen[key] = v


def test_bad_arguments():
    with pytest.raises(ValueError, match="n_samples"):
        make_spoken_digits(0)
    with pytest.raises(ValueError, match="min_digits"):
        make_spoken_digits(2, min_digits=4, max_digits=3)
    with pytest.raises(ValueError, match="voices is empty"):
        make_spoken_digits(2, voices=[])
    with pytest.raises(ValueError, match="speed"):
        make_spoken_digits(2, speed=(200, 100))
    with pytest.raises(ValueError, match="speed"):
        make_spoken_digits(2, speed=(50, 100))
    with pytest.raises(ValueError, match="pitch"):
        make_spoken_digits(2, pitch=(0, 120))
    with pytest.raises(RuntimeError, match="espeak-ng failed for voice 'xx-nowhere'"):
        make_spoken_digits(1, voices=["xx-nowhere"])
    with pytest.raises(ValueError, match="n_test_variants"):
        split_voices(["en-us+m1", "en-us+m2"], 2)


def test_missing_espeak_is_named(monkeypatch):
    monkeypatch.setenv("CRNN_ESPEAK", "/nonexistent/espeak-ng")
    with pytest.raises(RuntimeError, match="apt-get install espeak-ng"):
        make_spoken_digits(1)


@pytest.mark.skipif(os.environ.get("CRNN_SANITIZE") == "1", reason="slow under ASan")
def test_transcriber_learns_unseen_voices():
    """A small BiGRU trained for seconds on 16 voice variants x 3 accents
    transcribes digit strings of 3 held-out variants far above chance (the
    full-size result, CER <= 4%, is benches/speech.py's)."""
    voices = spoken_digit_voices(accents=["en-us", "en", "en-029"],
                                 variants=VARIANTS[::5])
    train, test = split_voices(voices, 3, random_state=0)
    X, y = make_spoken_digits(700, voices=train, random_state=0, n_jobs=2, min_digits=1,
                              max_digits=4)
    Xt, yt = make_spoken_digits(80, voices=test, random_state=1, n_jobs=2, min_digits=1,
                                max_digits=4)
    # two frames stacked into one (20 ms): half the steps
    stack = [np.ascontiguousarray(np.hstack([x[:len(x) // 2 * 2:2], x[1:len(x) // 2 * 2:2]]))
             for x in X]
    stack_t = [np.ascontiguousarray(np.hstack([x[:len(x) // 2 * 2:2], x[1:len(x) // 2 * 2:2]]))
               for x in Xt]
    m = crnn.RNNTranscriber(cell="gru", hidden_size=48, num_layers=1, max_iter=10,
                            learning_rate_init=3e-3, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m.fit(stack, y)
    assert m.alphabet_ == list("0123456789")
    assert m.score(stack_t, yt) > 0.6
