"""Steering data from gymnasium's CarRacing-v3 (issue 29): camera frames and
the steering of an expert driver that reads the track from the simulator.

The expert (``CarRacingExpert``) uses the environment's internal state,
never the pixels:
- **progress**: the nearest centre-line point, searched in a window ahead of
  the last one (so it never jumps across the track), or over the whole
  track when the car is more than 15 units away;
- **steering**: pure pursuit on the centre line, with a lookahead of
  6 + 0.12 x speed along the track and a small damping of the yaw rate; the
  front wheels' joint stops at 0.4 rad, so the command stays in [-0.4, 0.4];
- **speed**: a plan made once per track, the corner speed
  sqrt(200 / curvature) (curvature smoothed over 5 points, at most 110),
  limited backwards so that the car can brake in time (60 units/s^2) and
  at least 18; proportional gas and brake (the brake below 0.8: harder
  locks the wheels), gas cut to 30% while the rear wheels spin more than
  5 units/s faster than the car moves, and 15 when the car points more than
  1 rad off the track.
On held-out tracks (seeds 100-119) it visited every tile of all 20 in
605-919 steps of the 1,000 allowed, reward 925 on average; seeds 200-299
gave 100 of 100.

``make_car_racing`` records episodes: the frames the car's camera shows
and the expert's steering at each of them.  Rendering a frame costs about
4 ms here; the physics alone 0.1 ms.
"""
import math

import numpy as np
from sklearn.utils import check_random_state

from .._base.params import check_int_arg

# the expert's constants (tuned on seeds 0-9 of CarRacing-v3)
WHEELBASE = 3.24          # (80 + 82) * SIZE in the simulator's units
MAX_STEER = 0.4           # rad, the front wheels' joint limit
LOOK_BASE = 6.0           # lookahead along the track at standstill
LOOK_GAIN = 0.12          # more lookahead per unit/s of speed
A_LAT = 200.0             # allowed lateral acceleration (about 300 spins out)
A_BRAKE = 60.0            # braking deceleration the speed plan assumes
V_MAX, V_MIN = 110.0, 18.0
CURV_SMOOTH = 2           # curvature averaged over 2 * 2 + 1 points
K_GAS, K_BRAKE = 0.10, 0.06
RECOVER_ANGLE, V_RECOVER = 1.0, 15.0
TC_SLIP, TC_CUT = 5.0, 0.3
K_YAW = 1.5
# the first frames zoom in from far above the track (CarRacing's intro)
INTRO_STEPS = 50


def _gymnasium():
    try:
        import gymnasium
    except ImportError as exc:
        raise ImportError('make_car_racing needs gymnasium with Box2D '
                          '(pip install "gymnasium[box2d]", or crnn[vision]).') from exc
    return gymnasium


class CarRacingExpert:
    """The expert driver of one CarRacing-v3 environment: ``action()``
    gives [steer, gas, brake] for the car's current state.  Made after each
    ``reset`` (a new track): it plans the speeds of the track once."""

    def __init__(self, env):
        u = env.unwrapped
        self.env = u
        pts = np.array([[t[2], t[3]] for t in u.track], dtype=np.float64)
        n = len(pts)
        d = np.roll(pts, -1, axis=0) - pts
        seg = np.hypot(d[:, 0], d[:, 1])
        heading = np.arctan2(d[:, 1], d[:, 0])
        dh = (np.roll(heading, -1) - heading + np.pi) % (2 * np.pi) - np.pi
        curv = np.abs(dh) / np.maximum(seg, 1e-6)
        smooth = sum(np.roll(curv, -o) for o in range(-CURV_SMOOTH, CURV_SMOOTH + 1))
        curv = np.maximum(smooth / (2 * CURV_SMOOTH + 1), 1e-4)
        v = np.minimum(np.sqrt(A_LAT / curv), V_MAX)
        for _ in range(2):                       # backwards, twice round the loop
            for i in range(n - 1, -1, -1):
                v[i] = min(v[i], math.sqrt(v[(i + 1) % n] ** 2 + 2 * A_BRAKE * seg[i]))
        self.pts, self.seg, self.n = pts, seg, n
        self.vplan = np.maximum(v, V_MIN)
        self.idx = 0

    def action(self):
        u, n = self.env, self.n
        car = u.car
        pos = np.array(car.hull.position, dtype=np.float64)
        ang = car.hull.angle
        fwd = np.array([-math.sin(ang), math.cos(ang)])
        vel = np.array(car.hull.linearVelocity, dtype=np.float64)
        speed = float(np.hypot(vel[0], vel[1]))
        win = np.arange(self.idx - 3, self.idx + 25) % n
        dd = np.sum((self.pts[win] - pos) ** 2, axis=1)
        self.idx = int(win[int(np.argmin(dd))])
        if dd.min() > 15.0 ** 2:
            self.idx = int(np.argmin(np.sum((self.pts - pos) ** 2, axis=1)))
        # pure pursuit on the point LOOK_BASE + LOOK_GAIN * speed along the track
        look = LOOK_BASE + LOOK_GAIN * speed
        j, run = self.idx, 0.0
        while run < look:
            run += self.seg[j]
            j = (j + 1) % n
        rel = self.pts[j] - pos
        alpha = math.atan2(fwd[0] * rel[1] - fwd[1] * rel[0], fwd @ rel)
        dist = max(math.hypot(rel[0], rel[1]), 1e-3)
        delta = math.atan2(2.0 * WHEELBASE * math.sin(alpha), dist)
        vf = max(float(fwd @ vel), 1.0)
        delta += K_YAW * (2.0 * vf * math.sin(alpha) / dist - car.hull.angularVelocity) * 0.05
        steer = float(np.clip(-delta / MAX_STEER, -1.0, 1.0)) * MAX_STEER
        # speed
        target = float(np.min(self.vplan[(self.idx + np.arange(3)) % n]))
        tdir = self.pts[(self.idx + 1) % n] - self.pts[self.idx]
        if abs(math.atan2(fwd[0] * tdir[1] - fwd[1] * tdir[0], fwd @ tdir)) > RECOVER_ANGLE:
            target = min(target, V_RECOVER)
        err = target - speed
        if err >= 0:
            gas, brake = float(np.clip(K_GAS * err, 0.0, 1.0)), 0.0
            slip = max(w.omega * w.wheel_rad for w in car.wheels[2:4]) - float(fwd @ vel)
            if slip > TC_SLIP:
                gas *= TC_CUT
        else:
            gas, brake = 0.0, float(np.clip(-K_BRAKE * err, 0.0, 0.8))
        return np.array([steer, gas, brake])


def make_car_racing(n_episodes=10, n_steps=200, *, steer_noise=0.0, random_state=None,
                    dtype=np.float32):
    """Camera frames of CarRacing-v3 and the expert's steering at each.

    Each episode is a new track (a seed drawn from ``random_state``).  The
    expert drives through CarRacing's zoom-in intro (its first 50 frames,
    not recorded), then ``n_steps`` frames are recorded with the expert's
    steering at each.  With ``steer_noise``, the car is driven with the
    expert's steering plus Gaussian noise of that standard deviation
    (clipped to the wheels' range), while the labels stay the expert's own
    steering: the recorded states then include small departures from the
    line and the way back, which behaviour cloning needs (DART, Laskey et
    al. 2017).

    Parameters
    ----------
    n_episodes : int, default=10
        Tracks to drive, 1 to 100,000.
    n_steps : int, default=200
        Frames recorded per episode, 1 to 950 (a track allows 1,000 steps,
        the intro included).  The expert completes a track in 600-920.
    steer_noise : float, default=0.0
        Standard deviation of the noise added to the steering the car is
        driven with, 0 to 1.
    random_state : int, RandomState or None, default=None
        The tracks (each episode's environment seed) and the noise.
    dtype : numpy dtype, default=numpy.float32
        Of the frames: a floating type (values in [0, 1]) or numpy.uint8
        (0-255, a quarter of the memory: 27 KB a frame).

    Returns
    -------
    X : ndarray of shape (n_episodes, n_steps, 96, 96, 3)
        The frames, RGB, channels last.
    y : ndarray of shape (n_episodes, n_steps), float32
        The expert's steering at each frame, in [-0.4, 0.4] (the action's
        first component; positive steers right).
    seeds : ndarray of shape (n_episodes,), int64
        Each episode's track seed (``env.reset(seed=...)``), to drive the
        same tracks again.

    Examples
    --------
    >>> from crnn.datasets import make_car_racing
    >>> X, y, seeds = make_car_racing(2, 5, random_state=0)
    >>> X.shape, y.shape, seeds.shape
    ((2, 5, 96, 96, 3), (2, 5), (2,))
    >>> bool(abs(y).max() <= 0.4)
    True
    """
    n_episodes = check_int_arg(n_episodes, "n_episodes", 1, 100_000)
    n_steps = check_int_arg(n_steps, "n_steps", 1, 1000 - INTRO_STEPS)
    if isinstance(steer_noise, bool) or not isinstance(steer_noise, (int, float, np.number)) \
            or not 0 <= steer_noise <= 1:
        raise ValueError(f"steer_noise must be a number in [0, 1]; got {steer_noise!r}.")
    try:
        kind = np.dtype(dtype).kind
    except TypeError:
        kind = None
    if kind != "f" and np.dtype(dtype if kind else np.float32) != np.uint8:
        raise ValueError(f"dtype must be a floating-point type or numpy.uint8; got {dtype!r}.")
    gym = _gymnasium()
    rng = check_random_state(random_state)
    seeds = rng.randint(0, 2**31 - 1, size=n_episodes).astype(np.int64)
    X = np.empty((n_episodes, n_steps, 96, 96, 3), dtype=dtype)
    y = np.empty((n_episodes, n_steps), dtype=np.float32)
    env = gym.make("CarRacing-v3")
    try:
        for e, seed in enumerate(seeds):
            obs, _ = env.reset(seed=int(seed))
            expert = CarRacingExpert(env)
            for t in range(INTRO_STEPS + n_steps):
                a = expert.action()
                if t >= INTRO_STEPS:
                    k = t - INTRO_STEPS
                    X[e, k] = obs if kind != "f" else obs / np.asarray(255, dtype)
                    y[e, k] = a[0]
                if steer_noise:
                    a[0] = np.clip(a[0] + steer_noise * rng.standard_normal(), -1, 1)
                obs, _, terminated, truncated, _ = env.step(a)
                if terminated or truncated:
                    raise RuntimeError(f"the episode of seed {seed} ended after {t + 1} "
                                       "steps, before its frames were recorded")
    finally:
        env.close()
    return X, y, seeds
