"""Spoken digit strings synthesized on this machine: a speech-to-text corpus
for RNNTranscriber (crnn.datasets.make_spoken_digits).

The espeak-ng program (a Debian package, ``apt-get install espeak-ng``)
speaks random digit strings in one of its English accents with one of its
voice variants, at a random speed and pitch; librosa computes the MFCCs.
Voices are "accent+variant" names, as espeak-ng's ``-v`` option takes them.
"""
import os
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from sklearn.utils import check_random_state

# espeak-ng's English accents (its own "gmw" voices; the "mb" ones need
# MBROLA data that the Debian package does not ship).  British English is
# "en": espeak-ng 1.51 finds "en-gb" by language and then ignores the
# variant, so every "en-gb+VARIANT" speaks as plain "en-gb" (identical audio
# for all variants); "en-us-nyc" speaks digits almost exactly as "en-us".
ACCENTS = ("en", "en-029", "en-gb-scotland", "en-gb-x-gbclan", "en-gb-x-gbcwmd",
           "en-gb-x-rp", "en-us")

# espeak-ng 1.51's voice variants (espeak-ng --voices=variant), sorted, less
# the ones that are not a voice of their own: "fast" (the plain voice at
# these speeds), "caleb" and "klatt6" (the same audio as "klatt") and "Mr
# serious" (a space in its name; "Mr" silently falls back to the plain
# voice).  Each one kept speaks differently from the plain accents and from
# the others (checked by comparing their audio for the same digits).
VARIANTS = tuple(sorted((
    "Alex", "Alicia", "Andrea", "Andy", "Annie", "AnxiousAndy", "Demonic", "Denis", "Diogo",
    "Gene", "Gene2", "Henrique", "Hugo", "Jacky", "Lee", "Marco", "Mario", "Michael", "Mike",
    "Nguyen", "RicishayMax", "RicishayMax2", "RicishayMax3", "Storm", "Tweaky",
    "UniRobot", "adam", "anika", "anikaRobot", "announcer", "antonio", "aunty", "belinda",
    "benjamin", "boris", "croak", "david", "ed", "edward", "edward2", "f1", "f2",
    "f3", "f4", "f5", "grandma", "grandpa", "gustave", "iven", "iven2", "iven3",
    "iven4", "john", "kaukovalta", "klatt", "klatt2", "klatt3", "klatt4", "klatt5",
    "linda", "m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8", "marcelo", "max",
    "michel", "miguel", "norbert", "pablo", "paul", "pedro", "quincy", "rob", "robert",
    "robosoft", "robosoft2", "robosoft3", "robosoft4", "robosoft5", "robosoft6",
    "robosoft7", "robosoft8", "sandro", "shelby", "steph", "steph2", "steph3", "travis",
    "victor", "whisper", "whisperf", "zac")))

# the speed (-s, words per minute) and pitch (-p) espeak-ng honours: it
# silently clamps values outside these
SPEED_RANGE = (80, 450)
PITCH_RANGE = (0, 99)


def espeak_program():
    """The espeak-ng program to run (CRNN_ESPEAK names another), or None."""
    return shutil.which(os.environ.get("CRNN_ESPEAK", "espeak-ng"))


def espeak_available():
    """Whether the espeak-ng program is installed."""
    return espeak_program() is not None


def spoken_digit_voices(accents=None, variants=None):
    """espeak-ng voice names "accent+variant" for every pair.

    Parameters
    ----------
    accents : list of str, default=None
        espeak-ng English voices (default: the 7 of ``ACCENTS``).
    variants : list of str, default=None
        Voice variants (default: the 97 of ``VARIANTS``).

    Returns
    -------
    voices : list of str
        Grouped by accent, in the order of ``accents``, then by variant in
        the order of ``variants`` (the defaults are each sorted).

    Examples
    --------
    >>> from crnn.datasets import spoken_digit_voices
    >>> len(spoken_digit_voices())          # 7 accents x 97 variants
    679
    >>> spoken_digit_voices(accents=["en-us", "en-029"], variants=["f2", "m1"])
    ['en-us+f2', 'en-us+m1', 'en-029+f2', 'en-029+m1']
    """
    accents = ACCENTS if accents is None else tuple(accents)
    variants = VARIANTS if variants is None else tuple(variants)
    return [f"{a}+{v}" for a in accents for v in variants]


def split_voices(voices, n_test_variants, random_state=None):
    """Hold out whole voice variants: every voice of a test variant, in any
    accent, goes to the test side, so a model is tested on voices it never
    heard.

    Parameters
    ----------
    voices : list of str
        "accent+variant" names.
    n_test_variants : int
        Variants to hold out (at least 1, fewer than the variants present).
    random_state : int, RandomState or None, default=None

    Returns
    -------
    train_voices, test_voices : list of str

    Examples
    --------
    >>> from crnn.datasets import spoken_digit_voices, split_voices
    >>> voices = spoken_digit_voices()
    >>> train, test = split_voices(voices, n_test_variants=10, random_state=0)
    >>> len(train), len(test)               # 87 and 10 variants, in each of 7 accents
    (609, 70)
    >>> variant = lambda voice: voice.split("+")[1]
    >>> {variant(v) for v in train} & {variant(v) for v in test}
    set()
    """
    variants = sorted({_variant(v) for v in voices})
    n_test_variants = int(n_test_variants)
    if not 1 <= n_test_variants < len(variants):
        raise ValueError(f"n_test_variants must be in [1, {len(variants) - 1}] for these "
                         f"{len(variants)} variants; got {n_test_variants}.")
    rng = check_random_state(random_state)
    test = set(rng.choice(variants, n_test_variants, replace=False).tolist())
    return ([v for v in voices if _variant(v) not in test],
            [v for v in voices if _variant(v) in test])


def _variant(voice):
    return voice.split("+", 1)[1] if "+" in voice else ""


def _speak(program, text, voice, speed, pitch):
    """espeak-ng's waveform of text: (float32 samples in [-1, 1], rate)."""
    out = subprocess.run([program, "--stdout", "-v", voice, "-s", str(speed), "-p", str(pitch),
                          text], capture_output=True, timeout=60)
    wav = out.stdout
    if out.returncode != 0 or len(wav) < 44 or wav[:4] != b"RIFF" or wav[8:12] != b"WAVE":
        raise RuntimeError(f"espeak-ng failed for voice {voice!r}: "
                           f"{out.stderr.decode(errors='replace').strip() or 'no audio'}")
    # a WAV written to a pipe carries placeholder sizes: read the format
    # from the fixed 44-byte header and take every byte after it as data
    channels = int.from_bytes(wav[22:24], "little")
    rate = int.from_bytes(wav[24:28], "little")
    bits = int.from_bytes(wav[34:36], "little")
    if channels != 1 or bits != 16 or wav[36:40] != b"data":
        raise RuntimeError(f"espeak-ng wrote an unexpected WAV format ({channels} channels, "
                           f"{bits} bits)")
    pcm = np.frombuffer(wav[44:44 + (len(wav) - 44) // 2 * 2], dtype="<i2")
    return pcm.astype(np.float32) / 32768.0, rate


def _features(librosa, wave, rate, n_mfcc, deltas, hop_ms, win_ms, dtype):
    """MFCCs (with deltas), each column normalised over the utterance."""
    trimmed, _ = librosa.effects.trim(wave, top_db=40)
    if trimmed.size >= rate // 20:
        wave = trimmed
    hop = max(1, int(round(rate * hop_ms / 1000)))
    win = max(2, int(round(rate * win_ms / 1000)))
    n_fft = 1 << (win - 1).bit_length()
    m = librosa.feature.mfcc(y=wave, sr=rate, n_mfcc=n_mfcc, n_fft=n_fft, hop_length=hop,
                             win_length=win, n_mels=40)
    if deltas:
        m = np.vstack([m, librosa.feature.delta(m, order=1, mode="nearest"),
                       librosa.feature.delta(m, order=2, mode="nearest")])
    f = m.T.astype(np.float64)
    f = (f - f.mean(axis=0)) / (f.std(axis=0) + 1e-5)
    return np.ascontiguousarray(f, dtype=dtype)


def make_spoken_digits(n_samples, *, voices=None, min_digits=3, max_digits=8, n_mfcc=13,
                       deltas=True, hop_length_ms=10.0, win_length_ms=25.0, speed=(120, 220),
                       pitch=(20, 80), random_state=None, n_jobs=None, return_voices=False,
                       dtype=np.float32):
    """Spoken random digit strings as MFCC frames, with their transcripts.

    Each utterance is a string of ``min_digits`` to ``max_digits`` random
    digits, spoken one by one ("3 1 4 1 5") by espeak-ng with a voice drawn
    from ``voices`` at a random speed (words per minute) and pitch (0-99),
    trimmed of leading and trailing silence; its features are
    ``n_mfcc`` MFCCs over 40 mel bands (plus their deltas and delta-deltas),
    one frame per ``hop_length_ms``, each column normalised to zero mean and
    unit variance over the utterance.  Needs the espeak-ng program and the
    librosa package.

    Parameters
    ----------
    n_samples : int
    voices : list of str, default=None
        espeak-ng voices "accent+variant" (default: every one of
        :func:`spoken_digit_voices`).  Hold voices out with
        :func:`split_voices` to test on speakers a model never heard.
    min_digits, max_digits : int, default=3, 8
    n_mfcc : int, default=13
    deltas : bool, default=True
        Append the first and second differences (3 * n_mfcc features).
    hop_length_ms, win_length_ms : float, default=10.0, 25.0
    speed : (int, int), default=(120, 220)
        Range of espeak-ng's speed (-s), words per minute, drawn uniformly;
        within [80, 450].
    pitch : (int, int), default=(20, 80)
        Range of espeak-ng's pitch (-p), drawn uniformly; within [0, 99].
    random_state : int, RandomState or None, default=None
        Every draw is made before any audio is made: the corpus does not
        depend on n_jobs.
    n_jobs : int, default=None
        Utterances made at once (None: 1; -1: one per core).
    return_voices : bool, default=False
        Also return each utterance's voice.
    dtype : numpy dtype, default=numpy.float32

    Returns
    -------
    X : list of ndarray of shape (n_frames_i, n_features)
    y : list of str
        The digits, without spaces ("31415").
    voices : list of str
        Only with return_voices.

    Examples
    --------
    >>> from crnn.datasets import make_spoken_digits, spoken_digit_voices
    >>> voices = spoken_digit_voices(accents=["en-us"], variants=["f2", "m1"])
    >>> X, y = make_spoken_digits(3, voices=voices, max_digits=4, random_state=0)
    >>> y
    ['033', '7935', '2476']
    >>> len(X), X[0].shape[1], X[0].dtype    # 13 MFCCs with their deltas per frame
    (3, 39, dtype('float32'))
    """
    n_samples = int(n_samples)
    if n_samples < 1:
        raise ValueError(f"n_samples must be at least 1, got {n_samples}.")
    if not 1 <= int(min_digits) <= int(max_digits):
        raise ValueError(f"need 1 <= min_digits <= max_digits, got {min_digits} and "
                         f"{max_digits}.")
    voices = spoken_digit_voices() if voices is None else list(voices)
    if not voices:
        raise ValueError("voices is empty.")
    for name, (lo, hi), (bot, top) in (("speed", speed, SPEED_RANGE),
                                       ("pitch", pitch, PITCH_RANGE)):
        if not (bot <= int(lo) <= int(hi) <= top):
            raise ValueError(f"{name} must be a range (low, high) within [{bot}, {top}] "
                             f"(espeak-ng clamps other values); got {(lo, hi)!r}.")
    if int(n_mfcc) < 1 or not hop_length_ms > 0 or not win_length_ms > 0:
        raise ValueError("n_mfcc, hop_length_ms and win_length_ms must be positive.")
    program = espeak_program()
    if program is None:
        raise RuntimeError("make_spoken_digits needs the espeak-ng program: install it, e.g. "
                           "apt-get install espeak-ng.")
    try:
        import librosa
    except ImportError as exc:
        raise ImportError("make_spoken_digits needs librosa for the MFCCs: pip install "
                          "librosa (or crnn[speech]).") from exc
    rng = check_random_state(random_state)
    n_digits = rng.randint(int(min_digits), int(max_digits) + 1, n_samples)
    digits = [rng.randint(0, 10, n) for n in n_digits]
    who = rng.randint(0, len(voices), n_samples)
    speeds = rng.randint(int(speed[0]), int(speed[1]) + 1, n_samples)
    pitches = rng.randint(int(pitch[0]), int(pitch[1]) + 1, n_samples)

    def one(i):
        wave, rate = _speak(program, " ".join(map(str, digits[i])), voices[who[i]], speeds[i],
                            pitches[i])
        return _features(librosa, wave, rate, int(n_mfcc), bool(deltas), hop_length_ms,
                         win_length_ms, dtype)

    workers = 1 if n_jobs is None else (os.cpu_count() or 1) if n_jobs == -1 else int(n_jobs)
    if workers < 1:
        raise ValueError(f"n_jobs must be None, -1 or a positive int; got {n_jobs!r}.")
    if workers == 1:
        X = [one(i) for i in range(n_samples)]
    else:
        with ThreadPoolExecutor(workers) as pool:
            X = list(pool.map(one, range(n_samples)))
    y = ["".join(map(str, d)) for d in digits]
    if return_voices:
        return X, y, [voices[k] for k in who]
    return X, y
