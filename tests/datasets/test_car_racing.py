"""make_car_racing and its expert driver (skipped without gymnasium and Box2D)."""
import warnings

import numpy as np
import pytest

gym = pytest.importorskip("gymnasium")
pytest.importorskip("Box2D")

from crnn.datasets import make_car_racing  # noqa: E402
from crnn.datasets._car_racing import CarRacingExpert  # noqa: E402


def test_frames_and_steering():
    X, y, seeds = make_car_racing(2, 12, random_state=0)
    assert X.shape == (2, 12, 96, 96, 3) and X.dtype == np.float32
    assert y.shape == (2, 12) and y.dtype == np.float32 and seeds.shape == (2,)
    assert X.min() >= 0 and X.max() <= 1 and X.std() > 0.05
    assert np.all(np.abs(y) <= 0.4 + 1e-7)
    assert not np.array_equal(X[0], X[1])                  # two tracks
    X2, y2, s2 = make_car_racing(2, 12, random_state=0)
    np.testing.assert_array_equal(X, X2)
    np.testing.assert_array_equal(y, y2)
    np.testing.assert_array_equal(seeds, s2)
    Xu, yu, _ = make_car_racing(1, 4, random_state=0, dtype=np.uint8)
    assert Xu.dtype == np.uint8
    np.testing.assert_allclose(Xu[0] / 255.0, X[0, :4], atol=1e-6)
    np.testing.assert_array_equal(yu[0], y[0, :4])


def test_steering_noise_moves_the_car_not_the_labels():
    """With noise the car is driven off the expert's line (other frames),
    and each label is the expert's own steering in the state shown: a
    replay with the same random stream gives the same labels."""
    X0, y0, _ = make_car_racing(1, 40, random_state=1)
    Xn, yn, seeds = make_car_racing(1, 40, random_state=1, steer_noise=0.3)
    assert np.abs(Xn - X0).max() > 0.1 and np.abs(yn - y0).max() > 1e-3
    rng = np.random.RandomState(1)
    assert rng.randint(0, 2**31 - 1, size=1)[0] == seeds[0]
    env = gym.make("CarRacing-v3")
    labels = []
    try:
        env.reset(seed=int(seeds[0]))
        ex = CarRacingExpert(env)
        for t in range(50 + 40):
            a = ex.action()
            if t >= 50:
                labels.append(a[0])
            a[0] = np.clip(a[0] + 0.3 * rng.standard_normal(), -1, 1)
            env.step(a)
    finally:
        env.close()
    np.testing.assert_array_equal(np.float32(labels), yn[0])


@pytest.mark.parametrize("seed", [100, 117])
def test_the_expert_completes_a_track(seed):
    """A whole lap within the 1,000 steps, every tile visited (the pixels
    are not drawn: the physics alone runs in about 0.1 s)."""
    env = gym.make("CarRacing-v3")
    u = env.unwrapped
    u._render = lambda *a, **k: None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")          # the checker misses the frames
            env.reset(seed=seed)
            ex = CarRacingExpert(env)
            total, steps = 0.0, 0
            while True:
                _, r, terminated, truncated, _ = env.step(ex.action())
                total += r
                steps += 1
                if terminated or truncated:
                    break
        assert u.tile_visited_count == len(u.track), (u.tile_visited_count, len(u.track))
        assert steps < 1000 and total > 850
    finally:
        env.close()


def test_bad_arguments():
    for kw, msg in ((dict(n_episodes=0), "n_episodes"), (dict(n_steps=951), "n_steps"),
                    (dict(steer_noise=-0.1), "steer_noise"), (dict(steer_noise=True),
                                                              "steer_noise"),
                    (dict(dtype=np.int32), "dtype"), (dict(dtype="nonsense"), "dtype")):
        with pytest.raises(ValueError, match=msg):
            make_car_racing(**kw)
