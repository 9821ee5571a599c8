"""Plain-numpy reference of the network and of backpropagation through time.

Written for clarity, not speed: loops over time steps, one tensor per weight
(the PyTorch state_dict names), and truncated BPTT done literally as in the
classic tutorial: the gradient that reaches a layer's output h_t is carried
back through at most k steps of that layer's recurrence, each injection point
with its own chain.  The kernels do it with one carry (or a ring of k + 1
chains); this file shares no code with them.
"""
import numpy as np


def act(name, z):
    return np.tanh(z) if name == "tanh" else np.maximum(z, 0)


def act_grad(name, h):
    """f'(z) from h = f(z)."""
    return 1 - h * h if name == "tanh" else (h > 0).astype(h.dtype)


def bf16(x):
    """x rounded to bfloat16 (as float32), as the CPU's vcvtneps2bf16: to
    nearest, ties to even; zero and subnormal inputs to a signed zero; NaN
    stays NaN."""
    u = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32).astype(np.uint64)
    r = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16) & 0xFFFF
    r = np.where((u & 0x7F800000) == 0, (u >> 16) & 0x8000, r)
    r = np.where((u & 0x7FFFFFFF) > 0x7F800000, (u >> 16) | 0x40, r)
    return (r.astype(np.uint32) << 16).view(np.float32)


def bf16_matmul(a, b):
    """The product of compute_dtype="bfloat16": operands rounded to
    bfloat16, products and sums exact (float64)."""
    return np.matmul(bf16(a).astype(np.float64), bf16(b).astype(np.float64))


def sigmoid(z):
    return 1 / (1 + np.exp(-z))


def cell_forward(cell, nonlinearity, xp, rp, h, c):
    """One step. xp = W_ih x + b_ih, rp = W_hh h + b_hh (gates in PyTorch
    order: GRU r, z, n; LSTM i, f, g, o).  Returns h, c and what the
    backward step needs."""
    if cell == "rnn":
        h_new = act(nonlinearity, xp + rp)
        return h_new, None, {"h": h_new}
    if cell == "gru":
        xr, xz, xn = np.split(xp, 3, axis=1)
        hr, hz, hn = np.split(rp, 3, axis=1)
        r, z = sigmoid(xr + hr), sigmoid(xz + hz)
        n = np.tanh(xn + r * hn)
        return (1 - z) * n + z * h, None, {"r": r, "z": z, "n": n, "hn": hn, "h_prev": h}
    i, f, g, o = np.split(xp + rp, 4, axis=1)
    i, f, g, o = sigmoid(i), sigmoid(f), np.tanh(g), sigmoid(o)
    c_new = f * c + i * g
    return o * np.tanh(c_new), c_new, {"i": i, "f": f, "g": g, "o": o, "c": c_new,
                                        "c_prev": c}


def cell_backward(cell, nonlinearity, st, dh, dc):
    """Chain rule through one step: from dL/dh_t (and dL/dc_t) to dL/dxp,
    dL/drp (the two pre-activations) and dL/dh_{t-1} except its W_hh path,
    dL/dc_{t-1}."""
    if cell == "rnn":
        dz = dh * act_grad(nonlinearity, st["h"])
        return dz, dz, np.zeros_like(dh), None
    if cell == "gru":
        r, z, n, hn = st["r"], st["z"], st["n"], st["hn"]
        dn_pre = dh * (1 - z) * (1 - n ** 2)          # through n = tanh(xn + r hn)
        dz_pre = dh * (st["h_prev"] - n) * z * (1 - z)
        dr_pre = dn_pre * hn * r * (1 - r)
        dxp = np.concatenate([dr_pre, dz_pre, dn_pre], axis=1)
        drp = np.concatenate([dr_pre, dz_pre, dn_pre * r], axis=1)
        return dxp, drp, dh * z, None
    i, f, g, o, c = st["i"], st["f"], st["g"], st["o"], st["c"]
    tc = np.tanh(c)
    dc_t = dc + dh * o * (1 - tc ** 2)
    dpre = np.concatenate([dc_t * g * i * (1 - i), dc_t * st["c_prev"] * f * (1 - f),
                           dc_t * i * (1 - g ** 2), dh * tc * o * (1 - o)], axis=1)
    return dpre, dpre, np.zeros_like(dh), dc_t * f


def forward(params, X, *, num_layers, bidirectional, nonlinearity, return_sequences,
            cell="rnn", h0=None, c0=None, masks=None, mm=np.matmul):
    """X (B, T, D) -> (logits, cache).  h0, c0: (num_layers * ndir, B, H).
    masks: dropout between layers, masks[l - 1] (B, T, ndir * H) multiplies
    the outputs of layer l - 1 that layer l reads (already divided by 1 - p).
    mm: the matrix product of every weight with its operand (a bfloat16
    one models compute_dtype="bfloat16")."""
    ndir = 2 if bidirectional else 1
    inp = X
    cache = []
    finals = []
    for layer in range(num_layers):
        outs, steps = [], []
        for d in range(ndir):
            sfx = f"_l{layer}" + ("_reverse" if d else "")
            W_ih, W_hh = params["rnn.weight_ih" + sfx], params["rnn.weight_hh" + sfx]
            b_ih, b_hh = params["rnn.bias_ih" + sfx], params["rnn.bias_hh" + sfx]
            B, T, _ = inp.shape
            H = W_hh.shape[1]
            k = layer * ndir + d
            h = np.zeros((B, H), dtype=X.dtype) if h0 is None else h0[k].astype(X.dtype)
            c = np.zeros((B, H), dtype=X.dtype) if c0 is None else c0[k].astype(X.dtype)
            hs = np.zeros((B, T, H), dtype=X.dtype)
            st = [None] * T
            for t in (range(T) if d == 0 else range(T - 1, -1, -1)):
                h, c, st[t] = cell_forward(cell, nonlinearity, mm(inp[:, t], W_ih.T) + b_ih,
                                           mm(h, W_hh.T) + b_hh, h, c)
                hs[:, t] = h
            outs.append(hs)
            steps.append(st)
            finals.append((h, c))
        cache.append((inp, outs, steps))
        inp = np.concatenate(outs, axis=2)
        if masks is not None and layer < num_layers - 1:
            inp = inp * masks[layer]
    if return_sequences:
        hin = inp
    else:
        last = [cache[-1][1][0][:, -1]]
        if ndir == 2:
            last.append(cache[-1][1][1][:, 0])
        hin = np.concatenate(last, axis=1)
    logits = mm(hin, params["head.weight"].T) + params["head.bias"]
    return logits, (cache, hin, finals)


def loss_and_dlogits(logits, y, loss, weights=None):
    """Mean loss and its gradient w.r.t. the logits.

    mse: y has the logits' shape; mean over every element.
    xent: y holds integer labels (logits' shape without the last axis).
    weights: one per loss term (the logits' shape without the last axis):
    the weighted mean sum(w * term) / sum(w) instead.
    """
    w = np.ones(logits.shape[:-1]) if weights is None else np.asarray(weights, np.float64)
    if loss == "mse":
        diff = logits - y
        total = w.sum() * diff.shape[-1]
        return (float(np.sum(w[..., None] * diff ** 2) / total),
                2 * w[..., None] * diff / total)
    z = logits - logits.max(axis=-1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=-1, keepdims=True))
    picked = np.take_along_axis(logp, y[..., None].astype(np.intp), axis=-1)[..., 0]
    d = np.exp(logp)
    np.put_along_axis(d, y[..., None].astype(np.intp),
                      np.take_along_axis(d, y[..., None].astype(np.intp), axis=-1) - 1, axis=-1)
    return float(-np.sum(w * picked) / w.sum()), d * w[..., None] / w.sum()


def _direction_backward(dH, steps, W_hh, cell, nonlinearity, d, trunc, mm=np.matmul):
    """dL/dxp and dL/drp of every step of one layer/direction, from the
    gradient dH reaching its outputs: one chain per injection point, each
    followed back at most `trunc` steps."""
    B, T, H = dH.shape
    G = W_hh.shape[0] // H
    order = list(range(T - 1, -1, -1)) if d == 0 else list(range(T))
    dXP = np.zeros((B, T, G * H), dtype=dH.dtype)
    dRP = np.zeros((B, T, G * H), dtype=dH.dtype)
    if trunc is None:
        # full BPTT: the chains add up, so one carried (dh, dc) does it
        dh_carry = np.zeros((B, H), dtype=dH.dtype)
        dc = np.zeros((B, H), dtype=dH.dtype)
        for t in order:
            dxp, drp, dh_direct, dc = cell_backward(cell, nonlinearity, steps[t],
                                                     dH[:, t] + dh_carry, dc)
            dXP[:, t] = dxp
            dRP[:, t] = drp
            dh_carry = dh_direct + mm(drp, W_hh)
        return dXP, dRP
    for p, origin in enumerate(order):
        dh = dH[:, origin]
        if not np.any(dh):
            continue
        dc = np.zeros_like(dh)
        for j, t in enumerate(order[p:]):
            if trunc is not None and j > trunc:
                break
            dxp, drp, dh_direct, dc = cell_backward(cell, nonlinearity, steps[t], dh, dc)
            dXP[:, t] += dxp
            dRP[:, t] += drp
            dh = dh_direct + mm(drp, W_hh)
    return dXP, dRP


def backward(params, cache, dlogits, *, num_layers, bidirectional, nonlinearity,
             return_sequences, bptt_truncate=None, cell="rnn", masks=None, h0=None,
             mm=np.matmul):
    """Gradients of every tensor (dict with the params' names).  h0: the
    initial states the forward pass started from (None: zeros); no gradient
    flows into them."""
    ndir = 2 if bidirectional else 1
    layer_cache, hin, _ = cache
    grads = {}
    O, W = dlogits.shape[-1], hin.shape[-1]
    grads["head.weight"] = mm(dlogits.reshape(-1, O).T, hin.reshape(-1, W))
    grads["head.bias"] = dlogits.reshape(-1, dlogits.shape[-1]).sum(axis=0)
    dh_in = mm(dlogits, params["head.weight"])
    inp, outs, _ = layer_cache[-1]
    B, T, _ = inp.shape
    H = outs[0].shape[2]
    if return_sequences:
        dY = dh_in
    else:
        dY = np.zeros((B, T, ndir * H), dtype=dlogits.dtype)
        dY[:, -1, :H] = dh_in[:, :H]
        if ndir == 2:
            dY[:, 0, H:] = dh_in[:, H:]
    for layer in range(num_layers - 1, -1, -1):
        inp, outs, steps = layer_cache[layer]
        dX = np.zeros_like(inp)
        for d in range(ndir):
            sfx = f"_l{layer}" + ("_reverse" if d else "")
            W_ih, W_hh = params["rnn.weight_ih" + sfx], params["rnn.weight_hh" + sfx]
            hs = outs[d]
            dXP, dRP = _direction_backward(dY[:, :, d * H:(d + 1) * H], steps[d], W_hh,
                                           cell, nonlinearity, d, bptt_truncate, mm)
            hprev = np.zeros_like(hs)
            if d == 0:
                hprev[:, 1:] = hs[:, :-1]
            else:
                hprev[:, :-1] = hs[:, 1:]
            if h0 is not None:
                hprev[:, 0 if d == 0 else -1] = h0[layer * ndir + d]
            GH = dXP.shape[2]
            grads["rnn.weight_ih" + sfx] = mm(dXP.reshape(-1, GH).T, inp.reshape(B * T, -1))
            grads["rnn.weight_hh" + sfx] = mm(dRP.reshape(-1, GH).T, hprev.reshape(B * T, -1))
            grads["rnn.bias_ih" + sfx] = dXP.sum(axis=(0, 1))
            grads["rnn.bias_hh" + sfx] = dRP.sum(axis=(0, 1))
            dX += mm(dXP, W_ih)
        dY = dX if masks is None or layer == 0 else dX * masks[layer - 1]
    return grads


def loss_and_grads(params, X, y, *, loss, bptt_truncate=None, weights=None, masks=None,
                   h0=None, c0=None, mm=np.matmul, **arch):
    logits, cache = forward(params, X, masks=masks, h0=h0, c0=c0, mm=mm, **arch)
    value, dlogits = loss_and_dlogits(logits, y, loss, weights)
    return value, backward(params, cache, dlogits, bptt_truncate=bptt_truncate, masks=masks,
                           h0=h0, mm=mm, **arch)


def _mix64(x):
    """splitmix64 on uint64 arrays (numpy's uint64 arithmetic wraps)."""
    x = x + np.uint64(0x9E3779B97F4A7C15)
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def dropout_masks(seed, p, sample_ids, T, width, num_layers):
    """The documented dropout masks (src/_kernels.pyx, _dropout): entry j of
    step t of sample s between layers l - 1 and l is dropped when
    mix(mix(mix(mix(seed + l) + s) + t) + j) / 2**64 < p; kept entries are
    scaled by 1 / (1 - p).  Returns masks[l - 1] of shape (B, T, width)."""
    s = np.asarray(sample_ids, dtype=np.uint64)[:, None, None]
    t = np.arange(T, dtype=np.uint64)[None, :, None]
    j = np.arange(width, dtype=np.uint64)[None, None, :]
    out = []
    for layer in range(1, num_layers):
        lk = _mix64(np.array([seed], dtype=np.uint64) + np.uint64(layer))
        u = _mix64(_mix64(_mix64(lk + s) + t) + j) >> np.uint64(11)
        keep = u.astype(np.float64) * 2.0 ** -53 >= p
        out.append(keep / (1 - p))
    return out


def final_states(params, X, **arch):
    """(h_n, c_n) as PyTorch returns them: (num_layers * ndir, B, H)."""
    _, (_, _, finals) = forward(params, X, **arch)
    h = np.stack([f[0] for f in finals])
    c = np.stack([f[1] for f in finals])
    return h, c


GATES = {"rnn": 1, "gru": 3, "lstm": 4}


def init_params(rng, *, n_features, hidden, n_outputs, num_layers, bidirectional, dtype,
                scale=None, cell="rnn"):
    ndir = 2 if bidirectional else 1
    G = GATES[cell]
    params = {}
    s = scale if scale is not None else 1 / np.sqrt(hidden)
    for layer in range(num_layers):
        d_in = n_features if layer == 0 else ndir * hidden
        for d in range(ndir):
            sfx = f"_l{layer}" + ("_reverse" if d else "")
            params["rnn.weight_ih" + sfx] = rng.uniform(-s, s, (G * hidden, d_in))
            params["rnn.weight_hh" + sfx] = rng.uniform(-s, s, (G * hidden, hidden))
            params["rnn.bias_ih" + sfx] = rng.uniform(-s, s, G * hidden)
            params["rnn.bias_hh" + sfx] = rng.uniform(-s, s, G * hidden)
    params["head.weight"] = rng.uniform(-s, s, (n_outputs, ndir * hidden))
    params["head.bias"] = rng.uniform(-s, s, n_outputs)
    return {k: v.astype(dtype) for k, v in params.items()}
