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


def forward(params, X, *, num_layers, bidirectional, nonlinearity, return_sequences):
    """X (B, T, D) -> (logits, cache)."""
    ndir = 2 if bidirectional else 1
    inp = X
    cache = []
    for layer in range(num_layers):
        outs = []
        for d in range(ndir):
            sfx = f"_l{layer}" + ("_reverse" if d else "")
            W_ih, W_hh = params["rnn.weight_ih" + sfx], params["rnn.weight_hh" + sfx]
            b = params["rnn.bias_ih" + sfx] + params["rnn.bias_hh" + sfx]
            B, T, _ = inp.shape
            H = W_hh.shape[0]
            h = np.zeros((B, H), dtype=X.dtype)
            hs = np.zeros((B, T, H), dtype=X.dtype)
            for t in (range(T) if d == 0 else range(T - 1, -1, -1)):
                h = act(nonlinearity, inp[:, t] @ W_ih.T + h @ W_hh.T + b)
                hs[:, t] = h
            outs.append(hs)
        cache.append((inp, outs))
        inp = np.concatenate(outs, axis=2)
    if return_sequences:
        hin = inp
    else:
        last = [cache[-1][1][0][:, -1]]
        if ndir == 2:
            last.append(cache[-1][1][1][:, 0])
        hin = np.concatenate(last, axis=1)
    logits = hin @ params["head.weight"].T + params["head.bias"]
    return logits, (cache, hin)


def loss_and_dlogits(logits, y, loss):
    """Mean loss and its gradient w.r.t. the logits.

    mse: y has the logits' shape; mean over every element.
    xent: y holds integer labels (logits' shape without the last axis).
    """
    if loss == "mse":
        diff = logits - y
        return float(np.mean(diff ** 2)), 2 * diff / diff.size
    z = logits - logits.max(axis=-1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=-1, keepdims=True))
    n = y.size
    picked = np.take_along_axis(logp, y[..., None].astype(np.intp), axis=-1)[..., 0]
    d = np.exp(logp)
    np.put_along_axis(d, y[..., None].astype(np.intp),
                      np.take_along_axis(d, y[..., None].astype(np.intp), axis=-1) - 1, axis=-1)
    return float(-picked.mean()), d / n


def _direction_backward(dH, hs, W_hh, nonlinearity, d, trunc):
    """dL/dz for one layer/direction from the gradient dH reaching its outputs."""
    B, T, H = hs.shape
    order = list(range(T - 1, -1, -1)) if d == 0 else list(range(T))
    dZ = np.zeros_like(hs)
    for p, origin in enumerate(order):
        g = dH[:, origin]
        if not np.any(g):
            continue
        for j, t in enumerate(order[p:]):
            if trunc is not None and j > trunc:
                break
            dz = g * act_grad(nonlinearity, hs[:, t])
            dZ[:, t] += dz
            g = dz @ W_hh
    return dZ


def backward(params, cache, dlogits, *, num_layers, bidirectional, nonlinearity,
             return_sequences, bptt_truncate=None):
    """Gradients of every tensor (dict with the params' names)."""
    ndir = 2 if bidirectional else 1
    layer_cache, hin = cache
    grads = {}
    O, W = dlogits.shape[-1], hin.shape[-1]
    grads["head.weight"] = dlogits.reshape(-1, O).T @ hin.reshape(-1, W)
    grads["head.bias"] = dlogits.reshape(-1, dlogits.shape[-1]).sum(axis=0)
    dh_in = dlogits @ params["head.weight"]
    inp, outs = layer_cache[-1]
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
        inp, outs = layer_cache[layer]
        dX = np.zeros_like(inp)
        for d in range(ndir):
            sfx = f"_l{layer}" + ("_reverse" if d else "")
            W_ih, W_hh = params["rnn.weight_ih" + sfx], params["rnn.weight_hh" + sfx]
            hs = outs[d]
            dZ = _direction_backward(dY[:, :, d * H:(d + 1) * H], hs, W_hh,
                                     nonlinearity, d, bptt_truncate)
            hprev = np.zeros_like(hs)
            if d == 0:
                hprev[:, 1:] = hs[:, :-1]
            else:
                hprev[:, :-1] = hs[:, 1:]
            grads["rnn.weight_ih" + sfx] = np.einsum("bth,btd->hd", dZ, inp)
            grads["rnn.weight_hh" + sfx] = np.einsum("bth,btk->hk", dZ, hprev)
            grads["rnn.bias_ih" + sfx] = dZ.sum(axis=(0, 1))
            grads["rnn.bias_hh" + sfx] = dZ.sum(axis=(0, 1))
            dX += dZ @ W_ih
        dY = dX
    return grads


def loss_and_grads(params, X, y, *, loss, bptt_truncate=None, **arch):
    logits, cache = forward(params, X, **arch)
    value, dlogits = loss_and_dlogits(logits, y, loss)
    return value, backward(params, cache, dlogits, bptt_truncate=bptt_truncate, **arch)


def init_params(rng, *, n_features, hidden, n_outputs, num_layers, bidirectional, dtype,
                scale=None):
    ndir = 2 if bidirectional else 1
    params = {}
    s = scale if scale is not None else 1 / np.sqrt(hidden)
    for layer in range(num_layers):
        d_in = n_features if layer == 0 else ndir * hidden
        for d in range(ndir):
            sfx = f"_l{layer}" + ("_reverse" if d else "")
            params["rnn.weight_ih" + sfx] = rng.uniform(-s, s, (hidden, d_in))
            params["rnn.weight_hh" + sfx] = rng.uniform(-s, s, (hidden, hidden))
            params["rnn.bias_ih" + sfx] = rng.uniform(-s, s, hidden)
            params["rnn.bias_hh" + sfx] = rng.uniform(-s, s, hidden)
    params["head.weight"] = rng.uniform(-s, s, (n_outputs, ndir * hidden))
    params["head.bias"] = rng.uniform(-s, s, n_outputs)
    return {k: v.astype(dtype) for k, v in params.items()}
