"""Plain-numpy float64 reference of an attention encoder-decoder (the model of
``RNNTranslator``), with a hand-written backward pass, and the same model in
PyTorch.

Written for clarity, not speed: every sentence is processed alone, on its own
lengths (no padding, no masks), one time step at a time, on 1-D vectors.  The
batch only matters in the loss, a mean over all the batch's target tokens.

The model
---------
Sizes: source / target vocabularies Vs, Vt; embedding E; hidden H; attention
A; ndir = 2 if bidirectional else 1; C = ndir * H; G = 3 (GRU) or 4 (LSTM).
Parameters (dict name -> float64 array, PyTorch state_dict names)::

    src_embedding.weight (Vs, E)            tgt_embedding.weight (Vt, E)
    encoder.{weight_ih_l0 (G*H, E), weight_hh_l0 (G*H, H), bias_ih_l0,
             bias_hh_l0 (G*H)} [+ the same names + "_reverse"]
    bridge.weight (H, C), bridge.bias (H)
    decoder.{weight_ih (G*H, Din), weight_hh (G*H, H), bias_ih, bias_hh (G*H)}
    attention "bahdanau": attention.W_query (A, H), attention.W_key (A, C),
                          attention.v (A)
    attention "luong":    attention.W (H, C), combine.weight (H, C + H),
                          combine.bias (H)
    head.weight (Vt, D_out), head.bias (Vt)

Cells, PyTorch's equations and gate order (xp = W_ih x + b_ih, hp = W_hh h +
b_hh, split into G blocks of H; sig = logistic sigmoid)::

    GRU  (r, z, n): r = sig(xp_r + hp_r), z = sig(xp_z + hp_z),
                    n = tanh(xp_n + r * hp_n),  h' = (1 - z) n + z h
    LSTM (i, f, g, o): i, f, o = sig(.), g = tanh(.) of xp + hp,
                    c' = f c + i g,  h' = o tanh(c')

Encoder, sentence x_0 .. x_{T-1} (T >= 1), X_t = src_embedding[x_t]: forward
direction h^f_t = cell(X_t, h^f_{t-1}) for t = 0 .. T-1 from h^f_{-1} = 0
(c = 0); reverse direction h^r_t = cell(X_t, h^r_{t+1}) for t = T-1 .. 0 from
zeros, starting at the sentence's own last token.  Outputs h_t = [h^f_t; h^r_t]
(C), final state e = [h^f_{T-1}; h^r_0] (PyTorch's h_n for a packed batch).

Bridge: s_0 = tanh(bridge.weight e + bridge.bias); LSTM decoder cell c_0 = 0.

Decoder, target y_1 .. y_n (n >= 0): n + 1 steps k = 1 .. n + 1 with input
token u_k = BOS, y_1, .., y_n and target w_k = y_1, .., y_n, EOS; emb_k =
tgt_embedding[u_k]; masked softmax = softmax over the sentence's T positions.

* "bahdanau" (Din = E + C, D_out = H + C)::

      score_kj = v . tanh(W_query s_{k-1} + W_key h_j)
      alpha_k = softmax_j(score_k),  c_k = sum_j alpha_kj h_j
      s_k = cell([emb_k; c_k], s_{k-1}),  o_k = [s_k; c_k]

* "luong" ("general"; Din = E, D_out = H)::

      s_k = cell(emb_k, s_{k-1}),  score_kj = s_k . (W h_j)
      alpha_k = softmax_j(score_k),  c_k = sum_j alpha_kj h_j
      o_k = tanh(combine.weight [c_k; s_k] + combine.bias)

* None (Din = E, D_out = H): s_k = cell(emb_k, s_{k-1}), o_k = s_k.

Head and loss: logits_k = head.weight o_k + head.bias; the loss is the mean,
over every target token of the batch (sum of n_i + 1), of
-log softmax(logits_k)[w_k].
"""
import numpy as np

GATES = {"gru": 3, "lstm": 4}


def _sigmoid(z):
    return 1 / (1 + np.exp(-z))


def _softmax(z):
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _cell_names(prefix, suffix=""):
    return [f"{prefix}.{w}{suffix}" for w in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]


def _enc_names(d):
    return _cell_names("encoder", "_l0" + ("_reverse" if d else ""))


def init_params(rng, *, Vs, Vt, E, H, A, cell, bidirectional, attention, scale=0.3):
    """Random parameters, uniform in [-scale, scale], float64.

    Parameters
    ----------
    rng : numpy.random.Generator
    Vs, Vt, E, H, A : int
        Vocabulary sizes, embedding, hidden and attention sizes (A is unused
        unless ``attention == "bahdanau"``).
    cell : {"gru", "lstm"}
    bidirectional : bool
    attention : {"bahdanau", "luong", None}
    scale : float

    Returns
    -------
    dict
        Name -> array, the names and shapes of the module's docstring.
    """
    G, ndir = GATES[cell], 2 if bidirectional else 1
    C = ndir * H
    shapes = {"src_embedding.weight": (Vs, E), "tgt_embedding.weight": (Vt, E)}
    for d in range(ndir):
        shapes.update(zip(_enc_names(d), [(G * H, E), (G * H, H), (G * H,), (G * H,)]))
    shapes.update({"bridge.weight": (H, C), "bridge.bias": (H,)})
    Din, D_out = (E + C, H + C) if attention == "bahdanau" else (E, H)
    shapes.update(zip(_cell_names("decoder"), [(G * H, Din), (G * H, H), (G * H,), (G * H,)]))
    if attention == "bahdanau":
        shapes.update({"attention.W_query": (A, H), "attention.W_key": (A, C),
                       "attention.v": (A,)})
    elif attention == "luong":
        shapes.update({"attention.W": (H, C), "combine.weight": (H, C + H),
                       "combine.bias": (H,)})
    elif attention is not None:
        raise ValueError(f"unknown attention {attention!r}")
    shapes.update({"head.weight": (Vt, D_out), "head.bias": (Vt,)})
    return {k: rng.uniform(-scale, scale, s).astype(np.float64) for k, s in shapes.items()}


# ----------------------------------------------------------------- cells

def _cell_forward(cell, W, x, h, c):
    """One step on vectors; W = (W_ih, W_hh, b_ih, b_hh).  Returns h', c' and
    what the backward step needs (c' is None for the GRU)."""
    W_ih, W_hh, b_ih, b_hh = W
    xp, hp = W_ih @ x + b_ih, W_hh @ h + b_hh
    if cell == "gru":
        xr, xz, xn = np.split(xp, 3)
        hr, hz, hn = np.split(hp, 3)
        r, z = _sigmoid(xr + hr), _sigmoid(xz + hz)
        n = np.tanh(xn + r * hn)
        return (1 - z) * n + z * h, None, dict(x=x, h=h, r=r, z=z, n=n, hn=hn)
    i, f, g, o = np.split(xp + hp, 4)
    i, f, g, o = _sigmoid(i), _sigmoid(f), np.tanh(g), _sigmoid(o)
    c_new = f * c + i * g
    return o * np.tanh(c_new), c_new, dict(x=x, h=h, c=c, c_new=c_new, i=i, f=f, g=g, o=o)


def _cell_backward(cell, W, names, st, dh, dc, grads):
    """From dL/dh' (and dL/dc') to dL/dx, dL/dh, dL/dc (None for the GRU);
    adds the weights' gradients into grads[names]."""
    W_ih, W_hh = W[0], W[1]
    if cell == "gru":
        r, z, n = st["r"], st["z"], st["n"]
        dn = dh * (1 - z) * (1 - n * n)
        dz = dh * (st["h"] - n) * z * (1 - z)
        dr = dn * st["hn"] * r * (1 - r)
        dxp = np.concatenate([dr, dz, dn])
        dhp = np.concatenate([dr, dz, dn * r])
        dh_prev, dc_prev = dh * z, None
    else:
        i, f, g, o = st["i"], st["f"], st["g"], st["o"]
        tc = np.tanh(st["c_new"])
        dct = dc + dh * o * (1 - tc * tc)
        dxp = dhp = np.concatenate([dct * g * i * (1 - i), dct * st["c"] * f * (1 - f),
                                    dct * i * (1 - g * g), dh * tc * o * (1 - o)])
        dh_prev, dc_prev = 0, dct * f
    grads[names[0]] += np.outer(dxp, st["x"])
    grads[names[1]] += np.outer(dhp, st["h"])
    grads[names[2]] += dxp
    grads[names[3]] += dhp
    return W_ih.T @ dxp, dh_prev + W_hh.T @ dhp, dc_prev


# --------------------------------------------------------------- forward

def _encode(params, x, cell, ndir):
    """Encoder outputs Hs (T, C), final state e (C), per-direction step caches."""
    X = params["src_embedding.weight"][x]
    T, H = len(x), params["encoder.weight_hh_l0"].shape[1]
    outs, finals, steps = [], [], []
    for d in range(ndir):
        W = [params[k] for k in _enc_names(d)]
        h, c = np.zeros(H), np.zeros(H)
        hs, st = np.zeros((T, H)), [None] * T
        for t in (range(T) if d == 0 else range(T - 1, -1, -1)):
            h, c, st[t] = _cell_forward(cell, W, X[t], h, c)
            hs[t] = h
        outs.append(hs)
        finals.append(h)
        steps.append(st)
    return np.concatenate(outs, axis=1), np.concatenate(finals), steps


def _bridge(params, e, cell):
    s0 = np.tanh(params["bridge.weight"] @ e + params["bridge.bias"])
    return s0, (np.zeros_like(s0) if cell == "lstm" else None)


def _attend(scores, Hs):
    alpha = _softmax(scores)
    return alpha, alpha @ Hs


def _decoder_step(params, cell, attention, tok, s, c, Hs, K):
    """One decoder step from token id ``tok`` and state (s, c).  K = Hs
    W_key^T (bahdanau only).  Returns logits, s', c' and the step's record."""
    W = [params[k] for k in _cell_names("decoder")]
    emb = params["tgt_embedding.weight"][tok]
    rec = dict(tok=tok, s_prev=s)
    if attention == "bahdanau":
        a = np.tanh(params["attention.W_query"] @ s + K)            # (T, A)
        alpha, ctx = _attend(a @ params["attention.v"], Hs)
        s, c, rec["st"] = _cell_forward(cell, W, np.concatenate([emb, ctx]), s, c)
        o = np.concatenate([s, ctx])
        rec.update(a=a)
    else:
        s, c, rec["st"] = _cell_forward(cell, W, emb, s, c)
        if attention == "luong":
            alpha, ctx = _attend(Hs @ (params["attention.W"].T @ s), Hs)
            o = np.tanh(params["combine.weight"] @ np.concatenate([ctx, s])
                        + params["combine.bias"])
        else:
            alpha, ctx, o = None, None, s
    rec.update(s=s, alpha=alpha, ctx=ctx, o=o)
    return params["head.weight"] @ o + params["head.bias"], s, c, rec


def _encode_and_bridge(params, x, cell, bidirectional, attention):
    Hs, e, enc_steps = _encode(params, np.asarray(x), cell, 2 if bidirectional else 1)
    s0, c0 = _bridge(params, e, cell)
    K = Hs @ params["attention.W_key"].T if attention == "bahdanau" else None
    return Hs, e, enc_steps, s0, c0, K


def forward(params, src, tgt, *, cell, bidirectional, attention, bos, eos):
    """Teacher-forced forward pass and mean cross-entropy.

    Parameters
    ----------
    params : dict
    src : list of 1-D int arrays
        Source sentences (token ids < Vs), each of length >= 1.
    tgt : list of 1-D int arrays
        Target sentences (ids < Vt), lengths >= 0, without BOS / EOS.
    cell, bidirectional, attention
        The architecture (see the module's docstring).
    bos, eos : int
        Target ids fed first / expected last.

    Returns
    -------
    loss : float
        Mean of -log p over the sum(len(y) + 1) target tokens.
    cache : dict
        For :func:`backward`, plus per sentence i: ``logits[i]`` (n_i + 1, Vt),
        ``attention[i]`` (n_i + 1, T_i) (None without attention: alpha_kj of
        step k over the sentence's own T_i source positions),
        ``token_losses[i]`` (n_i + 1,) and ``targets[i]``.
    """
    assert len(src) == len(tgt)
    sents = []
    for x, y in zip(src, tgt):
        x, y = np.asarray(x, dtype=np.intp), np.asarray(y, dtype=np.intp)
        assert x.ndim == 1 and len(x) >= 1 and y.ndim == 1
        Hs, e, enc_steps, s, c, K = _encode_and_bridge(params, x, cell, bidirectional,
                                                        attention)
        s0 = s
        inputs = np.concatenate([[bos], y]).astype(np.intp)
        targets = np.concatenate([y, [eos]]).astype(np.intp)
        logits, recs = [], []
        for tok in inputs:
            lg, s, c, rec = _decoder_step(params, cell, attention, tok, s, c, Hs, K)
            logits.append(lg)
            recs.append(rec)
        logits = np.array(logits)
        z = logits - logits.max(axis=1, keepdims=True)
        logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        sents.append(dict(x=x, Hs=Hs, e=e, enc_steps=enc_steps, s0=s0, recs=recs,
                          logits=logits, targets=targets,
                          token_losses=-logp[np.arange(len(targets)), targets]))
    N = sum(len(s["targets"]) for s in sents)
    loss = float(sum(s["token_losses"].sum() for s in sents) / N)
    cache = dict(arch=dict(cell=cell, bidirectional=bidirectional, attention=attention),
                 sents=sents, N=N,
                 logits=[s["logits"] for s in sents],
                 targets=[s["targets"] for s in sents],
                 token_losses=[s["token_losses"] for s in sents],
                 attention=[None if attention is None
                            else np.array([r["alpha"] for r in s["recs"]]) for s in sents])
    return loss, cache


# -------------------------------------------------------------- backward

def _attention_backward(dctx, alpha, Hs, dHs):
    """c = alpha Hs, alpha = softmax(score): adds dL/dHs through c, returns
    dL/dscore."""
    dalpha = Hs @ dctx
    dHs += np.outer(alpha, dctx)
    return alpha * (dalpha - alpha @ dalpha)


def backward(params, cache):
    """Gradients of the loss of :func:`forward` by hand (BPTT through the
    decoder, the attention, the bridge and both encoder directions).

    Returns
    -------
    dict
        Name -> gradient, the params' keys and shapes.
    """
    cell, attention = cache["arch"]["cell"], cache["arch"]["attention"]
    ndir = 2 if cache["arch"]["bidirectional"] else 1
    grads = {k: np.zeros_like(v) for k, v in params.items()}
    Wd = [params[k] for k in _cell_names("decoder")]
    H = params["bridge.weight"].shape[0]
    E = params["tgt_embedding.weight"].shape[1]
    for sc in cache["sents"]:
        Hs = sc["Hs"]
        C = Hs.shape[1]
        dHs = np.zeros_like(Hs)
        dK = 0        # dL/d(Hs W_key^T), bahdanau
        probs = _softmax(sc["logits"])
        probs[np.arange(len(sc["targets"])), sc["targets"]] -= 1
        dlogits = probs / cache["N"]
        ds, dc = np.zeros(H), np.zeros(H)        # from the later steps
        for k in range(len(sc["recs"]) - 1, -1, -1):
            rec = sc["recs"][k]
            grads["head.weight"] += np.outer(dlogits[k], rec["o"])
            grads["head.bias"] += dlogits[k]
            do = params["head.weight"].T @ dlogits[k]
            if attention == "bahdanau":
                ds_k, dctx = ds + do[:H], do[H:]
            elif attention == "luong":
                s = rec["s"]
                dz = do * (1 - rec["o"] ** 2)
                grads["combine.weight"] += np.outer(dz, np.concatenate([rec["ctx"], s]))
                grads["combine.bias"] += dz
                dcs = params["combine.weight"].T @ dz
                ds_k = ds + dcs[C:]
                dscore = _attention_backward(dcs[:C], rec["alpha"], Hs, dHs)
                u = Hs.T @ dscore                   # score_j = s . W h_j
                grads["attention.W"] += np.outer(s, u)
                ds_k += params["attention.W"] @ u
                dHs += np.outer(dscore, params["attention.W"].T @ s)
            else:
                ds_k = ds + do
            dx, ds, dc = _cell_backward(cell, Wd, _cell_names("decoder"), rec["st"], ds_k, dc,
                                        grads)
            grads["tgt_embedding.weight"][rec["tok"]] += dx[:E]
            if attention == "bahdanau":
                dscore = _attention_backward(dctx + dx[E:], rec["alpha"], Hs, dHs)
                a = rec["a"]
                grads["attention.v"] += a.T @ dscore
                dpre = np.outer(dscore, params["attention.v"]) * (1 - a * a)   # (T, A)
                dK += dpre
                dq = dpre.sum(axis=0)
                grads["attention.W_query"] += np.outer(dq, rec["s_prev"])
                ds = ds + params["attention.W_query"].T @ dq
        if attention == "bahdanau":
            grads["attention.W_key"] += dK.T @ Hs
            dHs += dK @ params["attention.W_key"]
        # bridge (the LSTM's c_0 = 0 is a constant: dc is dropped)
        dz = ds * (1 - sc["s0"] ** 2)
        grads["bridge.weight"] += np.outer(dz, sc["e"])
        grads["bridge.bias"] += dz
        de = params["bridge.weight"].T @ dz
        # encoder: the final states are the outputs at T-1 (forward) and 0 (reverse)
        x, T = sc["x"], len(sc["x"])
        for d in range(ndir):
            dH = dHs[:, d * H:(d + 1) * H].copy()
            dH[T - 1 if d == 0 else 0] += de[d * H:(d + 1) * H]
            W = [params[k] for k in _enc_names(d)]
            dh, dc = np.zeros(H), np.zeros(H)
            for t in (range(T - 1, -1, -1) if d == 0 else range(T)):
                dx, dh, dc = _cell_backward(cell, W, _enc_names(d), sc["enc_steps"][d][t],
                                            dH[t] + dh, dc, grads)
                grads["src_embedding.weight"][x[t]] += dx
    return grads


def loss_and_grads(params, src, tgt, **kw):
    """(loss, grads): :func:`forward` then :func:`backward`; ``kw`` are
    forward's keywords."""
    loss, cache = forward(params, src, tgt, **kw)
    return loss, backward(params, cache)


def greedy_decode(params, src, *, cell, bidirectional, attention, bos, eos, max_len):
    """Greedy decoding: feed BOS, then each step's argmax (lowest id on ties).

    A sentence stops when the argmax is EOS or after ``max_len`` steps,
    whichever comes first.  Returns a list of 1-D int arrays (np.intp), the
    emitted ids without EOS: length < max_len means EOS was produced after
    them; length == max_len means the limit was hit (EOS not produced within
    max_len steps).
    """
    out = []
    for x in src:
        Hs, _, _, s, c, K = _encode_and_bridge(params, x, cell, bidirectional, attention)
        tok, ids = bos, []
        for _ in range(max_len):
            logits, s, c, _ = _decoder_step(params, cell, attention, tok, s, c, Hs, K)
            tok = int(np.argmax(logits))
            if tok == eos:
                break
            ids.append(tok)
        out.append(np.array(ids, dtype=np.intp))
    return out


# ------------------------------------------------------------- PyTorch

try:
    import torch
    from torch import nn
except ImportError:             # the tests that need it are skipped
    torch = nn = None


if nn is not None:
    class TorchSeq2Seq(nn.Module):
        """The same model in PyTorch (float64), batched: the encoder runs on a
        packed batch, the decoder steps the padded batch in a Python loop with
        masked attention, and the loss ignores the padded steps.

        Parameters
        ----------
        Vs, Vt, E, H, A : int
        cell : {"gru", "lstm"}
        bidirectional : bool
        attention : {"bahdanau", "luong", None}
        """

        def __init__(self, *, Vs, Vt, E, H, A, cell, bidirectional, attention):
            super().__init__()
            self.cell, self.attn = cell, attention
            C = (2 if bidirectional else 1) * H
            self.src_embedding = nn.Embedding(Vs, E)
            self.tgt_embedding = nn.Embedding(Vt, E)
            self.encoder = {"gru": nn.GRU, "lstm": nn.LSTM}[cell](
                E, H, 1, batch_first=True, bidirectional=bidirectional)
            self.bridge = nn.Linear(C, H)
            Din = E + C if attention == "bahdanau" else E
            self.decoder = {"gru": nn.GRUCell, "lstm": nn.LSTMCell}[cell](Din, H)
            if attention == "bahdanau":
                self.attention = nn.ParameterDict({
                    "W_query": nn.Parameter(torch.empty(A, H)),
                    "W_key": nn.Parameter(torch.empty(A, C)),
                    "v": nn.Parameter(torch.empty(A))})
            elif attention == "luong":
                self.attention = nn.ParameterDict({"W": nn.Parameter(torch.empty(H, C))})
                self.combine = nn.Linear(C + H, H)
            self.head = nn.Linear(H + C if attention == "bahdanau" else H, Vt)
            self.double()

        def load_numpy(self, params):
            """Copy a params dict in (same names and shapes, checked)."""
            sd = self.state_dict()
            assert set(sd) == set(params), set(sd) ^ set(params)
            with torch.no_grad():
                for k, v in sd.items():
                    assert v.shape == params[k].shape, k
                    v.copy_(torch.from_numpy(np.asarray(params[k], dtype=np.float64)))
            return self

        def forward(self, src, tgt, bos, eos):
            """Returns logits (B, K, Vt), targets (B, K), step mask (B, K) and
            attention weights (B, K, T) (None without attention), K = max
            n_i + 1 and T = max source length."""
            B = len(src)
            lens = torch.tensor([len(x) for x in src])
            T = int(lens.max())
            X = torch.zeros(B, T, dtype=torch.long)
            for b, x in enumerate(src):
                X[b, :len(x)] = torch.as_tensor(np.asarray(x, dtype=np.int64))
            packed = nn.utils.rnn.pack_padded_sequence(self.src_embedding(X), lens,
                                                       batch_first=True, enforce_sorted=False)
            out, h_n = self.encoder(packed)
            if self.cell == "lstm":
                h_n = h_n[0]
            Hs, _ = nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=T)
            s = torch.tanh(self.bridge(torch.cat(list(h_n), dim=1)))
            c = torch.zeros_like(s)
            src_mask = torch.arange(T)[None, :] < lens[:, None]
            n = torch.tensor([len(y) for y in tgt])
            K = int(n.max()) + 1
            inputs = torch.full((B, K), bos, dtype=torch.long)
            targets = torch.zeros(B, K, dtype=torch.long)
            for b, y in enumerate(tgt):
                y = torch.as_tensor(np.asarray(y, dtype=np.int64))
                inputs[b, 1:len(y) + 1] = y
                targets[b, :len(y)] = y
                targets[b, len(y)] = eos
            step_mask = torch.arange(K)[None, :] < (n + 1)[:, None]
            if self.attn == "bahdanau":
                keys = Hs @ self.attention["W_key"].T                  # (B, T, A)
            elif self.attn == "luong":
                proj = Hs @ self.attention["W"].T                      # (B, T, H)
            logits, alphas = [], []
            for k in range(K):
                emb = self.tgt_embedding(inputs[:, k])
                if self.attn == "bahdanau":
                    q = s @ self.attention["W_query"].T
                    score = torch.tanh(q[:, None, :] + keys) @ self.attention["v"]
                    alpha = torch.softmax(score.masked_fill(~src_mask, -torch.inf), dim=1)
                    ctx = (alpha[:, :, None] * Hs).sum(dim=1)
                    x = torch.cat([emb, ctx], dim=1)
                else:
                    x = emb
                if self.cell == "lstm":
                    s, c = self.decoder(x, (s, c))
                else:
                    s = self.decoder(x, s)
                if self.attn == "bahdanau":
                    o = torch.cat([s, ctx], dim=1)
                elif self.attn == "luong":
                    score = (proj * s[:, None, :]).sum(dim=2)
                    alpha = torch.softmax(score.masked_fill(~src_mask, -torch.inf), dim=1)
                    ctx = (alpha[:, :, None] * Hs).sum(dim=1)
                    o = torch.tanh(self.combine(torch.cat([ctx, s], dim=1)))
                else:
                    o, alpha = s, None
                logits.append(self.head(o))
                alphas.append(alpha)
            att = None if self.attn is None else torch.stack(alphas, dim=1)
            return torch.stack(logits, dim=1), targets, step_mask, att

        def loss(self, src, tgt, bos, eos):
            """Mean cross-entropy over every target token (padding excluded)."""
            logits, targets, mask, _ = self(src, tgt, bos, eos)
            terms = nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]),
                                                targets.reshape(-1), reduction="none")
            return (terms * mask.reshape(-1)).sum() / mask.sum()
