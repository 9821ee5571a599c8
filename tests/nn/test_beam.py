"""Batched beam search (crnn._nn.beam): greedy and exhaustive limits against
independent searches with a toy stateful decoder, a hand-built case where
beam beats greedy, a per-sentence pure-Python reference, and the checks."""
import itertools
import math

import numpy as np
import pytest

from crnn._nn.beam import _topk_rows, beam_search


def log_softmax(z):
    z = z - z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


class ToyDecoder:
    """A random recurrent decoder: state_t = tanh(A state[parents] + Emb[token]),
    logp = log_softmax(W state_t).  Checks every call's arguments, and records
    the sentence of every row of every call."""

    def __init__(self, V, n_sentences, seed, H=5, scale=2.5):
        rng = np.random.default_rng(seed)
        self.V = V
        self.A = rng.normal(size=(H, H)) / math.sqrt(H)
        self.Emb = rng.normal(size=(V, H))
        self.W = scale * rng.normal(size=(V, H))
        self.init = rng.normal(size=(n_sentences, H))
        self.state = self.init.copy()
        self.sent = np.arange(n_sentences)
        self.calls = []            # the sentence of each row, per call

    def advance(self, state, tokens):
        state = np.tanh(state @ self.A.T + self.Emb[tokens])
        return state, log_softmax(state @ self.W.T)

    def __call__(self, tokens, parents):
        assert isinstance(tokens, np.ndarray) and tokens.dtype == np.intp
        assert isinstance(parents, np.ndarray) and parents.dtype == np.intp
        assert tokens.ndim == parents.ndim == 1 and len(tokens) == len(parents) > 0
        assert parents.min() >= 0 and parents.max() < len(self.state)
        assert tokens.min() >= 0 and tokens.max() < self.V
        self.sent = self.sent[parents]
        self.calls.append(self.sent.copy())
        self.state, logp = self.advance(self.state[parents], tokens)
        return logp

    def logprob(self, sentence, bos, full):
        """log P(full | sentence), full: the generated tokens (eos included
        if any), by an independent single-row run."""
        state, total, prev = self.init[sentence], 0.0, bos
        for tok in full:
            state, logp = self.advance(state, prev)
            total += logp[tok]
            prev = tok
        return total


def full_hyp(seq, max_len, eos):
    """The generated tokens of a returned sequence: eos appended unless the
    sequence reached max_len."""
    seq = [int(x) for x in seq]
    return seq if len(seq) == max_len else seq + [eos]


def normalized(score, length, lp):
    return score / length ** lp


def greedy(model, sentence, bos, eos, max_len, lp):
    state, prev, out, total = model.init[sentence], bos, [], 0.0
    for _ in range(max_len):
        state, logp = model.advance(state, prev)
        tok = int(np.argmax(logp))
        total += logp[tok]
        out.append(tok)
        if tok == eos:
            break
        prev = tok
    seq = out[:-1] if out[-1] == eos else out
    return seq, normalized(total, len(out), lp)


def brute_force(model, sentence, V, bos, eos, max_len, lp):
    best = None
    for length in range(1, max_len + 1):
        for body in itertools.product([v for v in range(V) if v != eos], repeat=length - 1):
            ends = [eos] if length < max_len else [eos] + [v for v in range(V) if v != eos]
            for last in ends:
                full = list(body) + [last]
                s = normalized(model.logprob(sentence, bos, full), length, lp)
                if best is None or s > best[1]:
                    best = (full[:-1] if last == eos else full, s)
    return best


def reference_beam(logp_fn, beam_size, eos, max_len, lp):
    """One sentence, plain Python, the same variant as crnn._nn.beam: logp_fn(prefix)
    -> next-token log-probabilities."""
    live, finished = [((), 0.0)], []
    for t in range(1, max_len + 1):
        cands = []
        for rank, (prefix, score) in enumerate(live):
            row = logp_fn(prefix)
            for tok in range(len(row)):
                if np.isfinite(row[tok]):
                    cands.append((-(score + row[tok]), rank, tok, prefix))
        cands.sort(key=lambda c: (c[0], c[1], c[2]))
        new_live = []
        for neg, _, tok, prefix in cands[:beam_size - len(finished)]:
            if tok == eos:
                finished.append((prefix, -neg / t ** lp))
            elif t == max_len:
                finished.append((prefix + (tok,), -neg / t ** lp))
            else:
                new_live.append((prefix + (tok,), -neg))
        live = new_live
        if not live or len(finished) >= beam_size:
            break
    best = max(range(len(finished)), key=lambda i: (finished[i][1], -i))
    return list(finished[best][0]), finished[best][1]


class TableModel:
    """A model given as a function of each row's sentence and prefix (the
    tokens generated so far, bos excluded)."""

    def __init__(self, fn, n_sentences, bos):
        self.fn, self.bos = fn, bos
        self.rows = [(s, None) for s in range(n_sentences)]   # None: not started
        self.calls = []

    def __call__(self, tokens, parents):
        assert tokens.dtype == np.intp and parents.dtype == np.intp
        assert len(tokens) == len(parents) > 0
        assert parents.min() >= 0 and parents.max() < len(self.rows)
        rows = []
        for tok, par in zip(tokens.tolist(), parents.tolist()):
            s, prefix = self.rows[par]
            if prefix is None:
                assert tok == self.bos
                rows.append((s, ()))
            else:
                rows.append((s, prefix + (tok,)))
        self.rows = rows
        self.calls.append([s for s, _ in rows])
        return np.array([self.fn(s, p) for s, p in rows])


def test_topk_rows_matches_stable_argsort():
    rng = np.random.default_rng(0)
    for _ in range(50):
        x = rng.integers(0, 4, size=(3, 17)).astype(float)
        x[rng.random(x.shape) < 0.3] = -np.inf
        for k in (1, 2, 5, 16, 17):
            np.testing.assert_array_equal(
                _topk_rows(x, k)[:, :k], np.argsort(-x, axis=1, kind="stable")[:, :k])


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("lp", [0.0, 1.0])
def test_beam_size_one_is_greedy(seed, lp):
    V, n, bos, eos, max_len = 6, 7, 0, 3, 9
    model = ToyDecoder(V, n, seed)
    seqs, scores = beam_search(model, n, beam_size=1, bos=bos, eos=eos, max_len=max_len,
                               length_penalty=lp)
    assert all(len(c) <= n for c in model.calls)
    for i in range(n):
        seq, score = greedy(model, i, bos, eos, max_len, lp)
        assert seqs[i].dtype == np.intp
        assert seqs[i].tolist() == seq
        assert scores[i] == pytest.approx(score, abs=1e-12)


def test_greedy_ties_take_the_lowest_id():
    # uniform over tokens 1..3 (eos = 1): greedy picks eos at once
    fn = lambda s, p: np.log(np.array([0.0, 1, 1, 1]) / 3)   # noqa: E731
    with np.errstate(divide="ignore"):
        seqs, scores = beam_search(TableModel(fn, 2, 0), 2, beam_size=1, bos=0, eos=1,
                                   max_len=5)
        assert [s.tolist() for s in seqs] == [[], []]
        # eos = 3: tokens 1, 1, ... until max_len
        seqs, scores = beam_search(TableModel(fn, 1, 0), 1, beam_size=1, bos=0, eos=3,
                                   max_len=4, length_penalty=0.0)
    assert seqs[0].tolist() == [1, 1, 1, 1]
    assert scores[0] == pytest.approx(4 * math.log(1 / 3))


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
@pytest.mark.parametrize("lp", [0.0, 0.6, 1.0])
def test_exhaustive_beam_is_brute_force(seed, lp):
    V, n, bos, eos, max_len = 4, 3, 0, 2, 4
    model = ToyDecoder(V, n, seed, scale=1.5)
    seqs, scores = beam_search(model, n, beam_size=V ** max_len, bos=bos, eos=eos,
                               max_len=max_len, length_penalty=lp)
    assert len(model.calls) <= max_len
    for i in range(n):
        seq, score = brute_force(model, i, V, bos, eos, max_len, lp)
        assert seqs[i].tolist() == seq
        assert scores[i] == pytest.approx(score, abs=1e-10)


def test_beam_beats_greedy_by_hand():
    # tokens: 0 bos, 1 eos, 2 a, 3 b.  Greedy: a (.5) then eos (.4): .2;
    # beam 2 keeps b (.4), whose eos has .9: .36
    table = {(): [0, .1, .5, .4], (2,): [0, .4, .3, .3], (3,): [0, .9, .05, .05]}
    fn = lambda s, p: np.log(np.array(table.get(p, [0, .4, .3, .3])))   # noqa: E731
    with np.errstate(divide="ignore"):
        for lp in (0.0, 1.0):
            g, gs = beam_search(TableModel(fn, 1, 0), 1, beam_size=1, bos=0, eos=1,
                                max_len=2, length_penalty=lp)
            model = TableModel(fn, 1, 0)
            b, bs = beam_search(model, 1, beam_size=2, bos=0, eos=1, max_len=2,
                                length_penalty=lp)
            assert g[0].tolist() == [2] and gs[0] == pytest.approx(math.log(.2) / 2 ** lp)
            assert b[0].tolist() == [3] and bs[0] == pytest.approx(math.log(.36) / 2 ** lp)
            assert bs[0] > gs[0]
            # two finished hypotheses after step 2: no third call
            assert model.calls == [[0], [0, 0]]


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4])
@pytest.mark.parametrize("beam_size", [2, 3, 5])
def test_matches_reference_and_scores_recompute(seed, beam_size):
    V, n, bos, eos, max_len, lp = 5, 6, 4, 0, 7, 0.7
    model = ToyDecoder(V, n, seed)
    seqs, scores = beam_search(model, n, beam_size=beam_size, bos=bos, eos=eos,
                               max_len=max_len, length_penalty=lp)
    assert scores.shape == (n,) and scores.dtype == np.float64
    for c in model.calls:                     # grouped by sentence, beam_size rows at most
        assert np.all(np.diff(c) >= 0)
        assert np.bincount(c).max() <= beam_size
    for i in range(n):
        full = full_hyp(seqs[i], max_len, eos)
        assert eos not in seqs[i].tolist()
        assert scores[i] == pytest.approx(
            normalized(model.logprob(i, bos, full), len(full), lp), abs=1e-10)

        def logp_fn(prefix, i=i):
            state = model.init[i]
            for tok in (bos,) + prefix:
                state, logp = model.advance(state, tok)
            return logp
        ref_seq, ref_score = reference_beam(logp_fn, beam_size, eos, max_len, lp)
        assert seqs[i].tolist() == ref_seq
        assert scores[i] == pytest.approx(ref_score, abs=1e-10)


def test_ties_follow_rank_then_token():
    # uniform over all 5 tokens except bos: every candidate ties
    fn = lambda s, p: np.log(np.array([0.0, .25, .25, .25, .25]))   # noqa: E731
    with np.errstate(divide="ignore"):
        for beam_size in (2, 3, 7):
            model = TableModel(fn, 2, 0)
            seqs, scores = beam_search(model, 2, beam_size=beam_size, bos=0, eos=4,
                                       max_len=3, length_penalty=0.0)
            ref = reference_beam(lambda p: fn(0, p), beam_size, 4, 3, 0.0)
            assert [s.tolist() for s in seqs] == [ref[0]] * 2
            assert scores.tolist() == pytest.approx([ref[1]] * 2)


def test_sentences_finish_at_different_steps():
    # sentence s: eos impossible before position L[s], certain at L[s]
    L = [1, 4, 2, 0, 3]
    bos, eos, max_len, beam_size = 0, 1, 10, 2

    def fn(s, prefix):
        if len(prefix) == L[s]:
            return np.log([0, 1, 0, 0])
        return np.log([0, 0, .6 if s % 2 else .3, .4 if s % 2 else .7])

    model = TableModel(fn, len(L), bos)
    with np.errstate(divide="ignore"):
        seqs, scores = beam_search(model, len(L), beam_size=beam_size, bos=bos, eos=eos,
                                   max_len=max_len, length_penalty=0.0)
    assert [len(s) for s in seqs] == L
    assert seqs[1].tolist() == [2, 2, 2, 2] and seqs[2].tolist() == [3, 3]
    assert scores[3] == 0.0
    assert scores[1] == pytest.approx(4 * math.log(.6))
    # sentence s has rows in calls 1 .. L[s] + 1 only, and no more than beam_size
    assert len(model.calls) == max(L) + 1
    for t, c in enumerate(model.calls, start=1):
        present = sorted(set(c))
        assert present == [s for s in range(len(L)) if t <= L[s] + 1]
        assert max(c.count(s) for s in present) <= beam_size


def test_max_len_cuts_live_hypotheses():
    V, n, bos, eos, max_len = 5, 4, 0, 1, 1
    model = ToyDecoder(V, n, 7)
    seqs, scores = beam_search(model, n, beam_size=3, bos=bos, eos=eos, max_len=max_len)
    assert len(model.calls) == 1
    for i in range(n):
        assert len(seqs[i]) <= 1
        full = full_hyp(seqs[i], max_len, eos)
        assert scores[i] == pytest.approx(model.logprob(i, bos, full))


def test_no_sentences_does_not_call_step():
    def step(tokens, parents):
        raise AssertionError("step called")

    seqs, scores = beam_search(step, 0, beam_size=3, bos=0, eos=1, max_len=5)
    assert seqs == [] and scores.shape == (0,)


def test_float32_step_output():
    model = ToyDecoder(5, 3, 4)
    ref, ref_scores = beam_search(model, 3, beam_size=3, bos=0, eos=1, max_len=6)
    model32 = ToyDecoder(5, 3, 4)
    seqs, scores = beam_search(lambda t, p: model32(t, p).astype(np.float32), 3,
                               beam_size=3, bos=0, eos=1, max_len=6)
    assert [s.tolist() for s in seqs] == [s.tolist() for s in ref]
    np.testing.assert_allclose(scores, ref_scores, rtol=1e-5)


def test_many_sentences_large_vocabulary():
    V, n, bos, eos, max_len, beam_size = 300, 40, 0, 1, 12, 4
    model = ToyDecoder(V, n, 11, H=8)
    seqs, scores = beam_search(model, n, beam_size=beam_size, bos=bos, eos=eos,
                               max_len=max_len, length_penalty=1.0)
    assert len(model.calls) <= max_len
    for i in range(0, n, 7):
        full = full_hyp(seqs[i], max_len, eos)
        assert scores[i] == pytest.approx(
            model.logprob(i, bos, full) / len(full), abs=1e-10)


def _ok_step(V=4):
    def step(tokens, parents):
        return np.full((len(tokens), V), -math.log(V))
    return step


@pytest.mark.parametrize("kwargs, match", [
    (dict(beam_size=0), "beam_size must be an integer >= 1"),
    (dict(beam_size=2.0), "beam_size must be an integer >= 1"),
    (dict(beam_size=True), "beam_size must be an integer >= 1"),
    (dict(max_len=0), "max_len must be an integer >= 1"),
    (dict(n_sentences=-1), "n_sentences must be an integer >= 0"),
    (dict(bos=-1), "bos must be an integer >= 0"),
    (dict(eos=None), "eos must be an integer >= 0"),
    (dict(length_penalty=-0.5), "length_penalty must be a finite number >= 0"),
    (dict(length_penalty=float("nan")), "length_penalty must be a finite number >= 0"),
    (dict(length_penalty=float("inf")), "length_penalty must be a finite number >= 0"),
    (dict(step=None), "step must be callable"),
])
def test_argument_errors(kwargs, match):
    args = dict(step=_ok_step(), n_sentences=2, beam_size=2, bos=0, eos=1, max_len=3)
    args.update(kwargs)
    step, n = args.pop("step"), args.pop("n_sentences")
    with pytest.raises(ValueError, match=match):
        beam_search(step, n, **args)


def test_step_output_errors():
    kw = dict(beam_size=2, bos=0, eos=1, max_len=3)
    with pytest.raises(ValueError, match=r"shape \(4,\); expected \(R, V\) with R = 2"):
        beam_search(lambda t, p: np.zeros(4), 2, **kw)
    with pytest.raises(ValueError, match=r"shape \(3, 4\); expected \(R, V\) with R = 2"):
        beam_search(lambda t, p: np.zeros((3, 4)), 2, **kw)
    with pytest.raises(ValueError, match=r"V = 3 columns, but bos = 0 and eos = 3 need V > 3"):
        beam_search(_ok_step(3), 2, beam_size=2, bos=0, eos=3, max_len=3)
    with pytest.raises(ValueError, match="NaN or \\+inf"):
        beam_search(lambda t, p: np.full((len(t), 4), np.nan), 2, **kw)
    with pytest.raises(ValueError, match="array of log-probabilities"):
        beam_search(lambda t, p: "nope", 2, **kw)
    sizes = iter([4, 5])
    with pytest.raises(ValueError, match="V = 5 columns after returning 4"):
        beam_search(lambda t, p: _ok_step(next(sizes))(t, p), 2, **kw)
