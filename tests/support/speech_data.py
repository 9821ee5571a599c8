"""Synthetic utterances for the transcriber's tests: each symbol of a random
transcript is 1-3 noisy frames of its own prototype, with silence between."""
import numpy as np

ALPHA = "abcde"


def speak(n, seed, alphabet=ALPHA, lo=1, hi=6, D=8):
    """n utterances: a random transcript of lo..hi symbols; every symbol
    gives 1-3 frames of its prototype plus noise, then 0-2 silence frames
    (at least 1 before a repeat of it)."""
    rng = np.random.default_rng(seed)
    protos = np.random.default_rng(123).normal(0, 1, (len(alphabet) + 1, D))
    X, y = [], []
    for _ in range(n):
        t = rng.choice(len(alphabet), rng.integers(lo, hi + 1))
        frames = [protos[-1] + rng.normal(0, 0.3, D) for _ in range(rng.integers(0, 3))]
        for j, c in enumerate(t):
            frames += [protos[c] + rng.normal(0, 0.3, D) for _ in range(rng.integers(1, 4))]
            gap = rng.integers(1 if j + 1 < len(t) and t[j + 1] == c else 0, 3)
            frames += [protos[-1] + rng.normal(0, 0.3, D) for _ in range(gap)]
        X.append(np.array(frames, np.float32))
        y.append("".join(alphabet[c] for c in t))
    return X, y
