"""RNNLanguageModel: training over streams with the state carried, scores
against PyTorch, generation, the vocabulary at score and generate time, bad
input, model files."""
import math
import os

import numpy as np
import pytest
from sklearn.base import clone

import crnn
from crnn import RNNLanguageModel
from crnn._text import language_model as _lm
from crnn._text.tokens import stream_batches

DATA = os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "data",
                    "tinyshakespeare.txt")


def generated_corpus(n_words, seed):
    """Text whose next character needs more than the previous one: words of
    a small lexicon in a fixed order pattern (adjective noun verb), so a
    model that reads context beats any bigram model."""
    rng = np.random.default_rng(seed)
    adjs = ["red", "old", "quiet", "bright", "small"]
    nouns = ["cat", "river", "stone", "garden", "owl"]
    verbs = ["sleeps", "sings", "waits", "turns", "glows"]
    out = []
    for _ in range(n_words // 3):
        out.append(f"the {adjs[rng.integers(5)]} {nouns[rng.integers(5)]} "
                   f"{verbs[rng.integers(5)]}.")
    return "\n".join(out) + "\n"


def bigram_nats(train, val):
    chars = sorted(set(train) | set(val))
    idx = {c: i for i, c in enumerate(chars)}
    tr = np.array([idx[c] for c in train])
    va = np.array([idx[c] for c in val])
    V = len(chars)
    big = np.ones((V, V))
    np.add.at(big, (tr[:-1], tr[1:]), 1)
    big /= big.sum(axis=1, keepdims=True)
    return float(-np.log(big[va[:-1], va[1:]]).mean())


def small(**kw):
    params = dict(hidden_size=24, num_layers=1, seq_length=12, batch_size=4, max_iter=2,
                  random_state=0)
    params.update(kw)
    return RNNLanguageModel(**params)


TEXT = generated_corpus(300, 0)


# ---------------------------------------------------------------------------
# against PyTorch


def _torch_nll(model, inputs, targets):
    """Sum of -log p(target) with nn.Embedding/one-hot + nn.LSTM/GRU/RNN +
    nn.Linear holding the model's weights, each sequence from zero state."""
    torch = pytest.importorskip("torch")
    from torch import nn
    sd = {k: torch.from_numpy(np.asarray(v, dtype=np.float64))
          for k, v in model.state_dict().items()}
    V, H, L = len(model.vocab_), model.hidden_size, model.num_layers
    E = sd["embedding.weight"].shape[1] if "embedding.weight" in sd else 0
    cls = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}[model.cell]
    rnn = cls(E or V, H, L, batch_first=True).double()
    head = nn.Linear(H, V).double()
    rnn.load_state_dict({k[4:]: v for k, v in sd.items() if k.startswith("rnn.")})
    head.load_state_dict({k[5:]: v for k, v in sd.items() if k.startswith("head.")})
    total = 0.0
    with torch.no_grad():
        for x, y in zip(inputs, targets):
            ids = torch.from_numpy(np.asarray(x, dtype=np.int64))[None]
            inp = (sd["embedding.weight"][ids] if E else
                   nn.functional.one_hot(ids, V).double())
            out, _ = rnn(inp)
            logp = torch.log_softmax(head(out)[0], dim=-1)
            total -= float(logp[torch.arange(len(y)), torch.from_numpy(np.asarray(y))].sum())
    return total


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
@pytest.mark.parametrize("embedding_dim", [None, 6])
def test_score_matches_torch(cell, embedding_dim):
    """score: mean log-likelihood of every document's tokens and end, each
    document read from a zero state after the end token; PyTorch with the
    same weights gives the same (float64)."""
    model = small(cell=cell, embedding_dim=embedding_dim, dtype=np.float64).fit(TEXT)
    docs = ["the red owl sings.", "the quiet cat waits.\nthe", "x§ unknown"]
    enc = model._encode(docs, "X")
    inputs = [np.concatenate([[1], d[:-1]]) for d in enc]
    nll = _torch_nll(model, inputs, enc)
    n = sum(len(d) for d in enc)
    assert model.score(docs) == pytest.approx(-nll / n, rel=1e-10)
    assert model.perplexity(docs) == pytest.approx(math.exp(nll / n), rel=1e-10)
    assert model.bits_per_token(docs) == pytest.approx(nll / n / math.log(2), rel=1e-10)


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_training_carries_the_state_across_chunks(cell):
    """An epoch walks batch_size streams in chunks of seq_length with the
    state carried: with a learning rate too small to move a float64 weight,
    its mean loss is the log-likelihood of each whole stream read from a
    zero state (PyTorch), not of chunks read from zero states."""
    model = small(cell=cell, dtype=np.float64).fit(TEXT)
    sd, vocab = model.state_dict(), model.vocab_
    frozen = small(cell=cell, dtype=np.float64, solver="sgd", momentum=0.0,
                   learning_rate_init=1e-300, clip_norm=None, batch_size=3, seq_length=7)
    frozen.load_state_dict(sd, vocab=vocab)
    frozen.partial_fit(TEXT)
    np.testing.assert_allclose(frozen._theta, model._theta.astype(np.float64), rtol=0, atol=0)
    ids = np.concatenate(model._encode(TEXT, "X"))
    x, y = stream_batches(ids, 3, 7)
    streams_x = [x[:, b].ravel() for b in range(3)]
    streams_y = [y[:, b].ravel() for b in range(3)]
    whole = _torch_nll(model, streams_x, streams_y) / x.size
    chunks = _torch_nll(model, [x[k, b] for k in range(x.shape[0]) for b in range(3)],
                        [y[k, b] for k in range(x.shape[0]) for b in range(3)]) / x.size
    assert frozen.loss_curve_[0] == pytest.approx(whole, rel=1e-10)
    assert abs(whole - chunks) > 1e-4          # the test can tell the two apart


def test_long_documents_are_scored_in_pieces_with_the_state_carried(monkeypatch):
    model = small(dtype=np.float64).fit(TEXT)
    docs = [TEXT[:700], TEXT[100:130], "the"]
    want = model.score(docs)
    p_want = model.predict_proba(docs)
    monkeypatch.setattr(_lm, "_EVAL_LOGITS", 1)          # pieces of 64 logits rows
    assert model.score(docs) == pytest.approx(want, rel=1e-12)
    np.testing.assert_allclose(model.predict_proba(docs), p_want, rtol=1e-10)


# ---------------------------------------------------------------------------
# learning


def test_beats_the_bigram_floor_on_a_generated_corpus():
    """A few seconds of training read context a bigram model cannot."""
    train, val = generated_corpus(3000, 1), generated_corpus(300, 2)
    model = RNNLanguageModel(hidden_size=64, num_layers=1, seq_length=30, batch_size=16,
                             max_iter=6, random_state=0).fit(train)
    floor = bigram_nats(train, val)
    nats = -model.score(val)
    assert nats < floor - 0.3, (nats, floor)


@pytest.mark.skipif(not os.path.exists(DATA), reason="../shared/data/tinyshakespeare.txt absent")
def test_beats_the_bigram_floor_on_shakespeare():
    with open(DATA, encoding="utf-8") as f:
        text = f.read()
    train, val = text[:150_000], text[-20_000:]
    model = RNNLanguageModel(hidden_size=128, num_layers=1, seq_length=50, batch_size=32,
                             max_iter=4, random_state=0).fit(train)
    assert -model.score(val) < 2.48                      # the bigram floor (issue 11)


def test_partial_fit_warm_start_and_early_stopping():
    model = small(max_iter=1)
    model.partial_fit(TEXT)
    model.partial_fit(TEXT + "the quiet §")              # a new character: unknown
    assert model.n_iter_ == 2 and len(model.loss_curve_) == 2
    assert "§" not in model.vocab_
    es = small(early_stopping=True, max_iter=30, n_iter_no_change=2, validation_fraction=0.2)
    es.fit(TEXT)
    assert len(es.validation_scores_) == es.n_iter_ and es.best_validation_score_ is not None
    assert es.validation_loss_curve_[0] == pytest.approx(-es.validation_scores_[0])
    val = small(early_stopping=True, max_iter=3).fit(TEXT, X_val=generated_corpus(60, 5))
    assert len(val.validation_scores_) == 3
    warm = clone(model).set_params(warm_start=True, max_iter=1).fit(TEXT)
    before = warm._theta.copy()
    warm.fit(TEXT)
    assert warm.n_iter_ == 2 and not np.array_equal(before, warm._theta)


# ---------------------------------------------------------------------------
# prediction and generation


def test_predict_and_predict_proba():
    model = small().fit(TEXT)
    p = model.predict_proba("the qu")
    assert p.shape == (len(model.vocab_),) and p.sum() == pytest.approx(1.0, rel=1e-6)
    assert model.predict("the qu") == model.vocab_[int(np.argmax(p))]
    many = model.predict_proba(["the qu", "", "§§§"])
    assert many.shape == (3, len(model.vocab_))
    np.testing.assert_allclose(many[0], p, rtol=1e-5)
    assert len(model.predict(["the", "the r"])) == 2
    with pytest.raises(ValueError, match="empty list"):
        model.predict_proba([])


def test_generate_reproducible_greedy_and_kernel_loop():
    model = small().fit(TEXT)
    a = model.generate(200, prompt="the ", temperature=0.8, random_state=5)
    assert len(a) == 200 and a == model.generate(200, prompt="the ", temperature=0.8,
                                                 random_state=5)
    assert a != model.generate(200, prompt="the ", temperature=0.8, random_state=6)
    # the kernel's sampling loop draws what the per-token loop draws
    V = len(model.vocab_)
    assert a == model.generate(200, prompt="the ", temperature=0.8, random_state=5, top_k=V)
    g = model.generate(100, prompt="the", temperature=0)
    assert g == model.generate(100, prompt="the", temperature=0, random_state=1)
    assert g == model.generate(100, prompt="the", temperature=0, top_p=0.5)
    # greedy: each token is predict's answer for the text so far
    assert g[0] == model.predict("the").replace("<eos>", "\n")
    assert g[1] == model.predict("the" + g[0]).replace("<eos>", "\n")
    assert "<unk>" not in model.generate(300, temperature=3.0, random_state=0)
    assert model.generate(0) == ""
    # a temperature far below 1 is greedy in effect, in both sampling paths
    assert model.generate(30, prompt="the", temperature=1e-300, random_state=0) == g[:30]
    assert model.generate(30, prompt="the", temperature=1e-300, top_k=V,
                          random_state=0) == g[:30]
    for kw in ({"top_k": 3}, {"top_p": 0.7}, {"top_k": 5, "top_p": 0.9}):
        assert len(model.generate(50, random_state=0, **kw)) == 50


def test_generation_reads_the_prompt_as_predict_does():
    """The prompt's state feeds the step kernel: the distribution of the
    first generated token is predict_proba(prompt) (sampling frequencies)."""
    model = small(dtype=np.float64).fit(TEXT)
    p = model.predict_proba("the old ")
    p[0] = 0
    p /= p.sum()
    draws = [model.generate(1, prompt="the old ", random_state=s) for s in range(3000)]
    counts = np.array([draws.count(t) for t in model.vocab_[2:]]) / len(draws)
    np.testing.assert_allclose(counts, p[2:], atol=0.03)


def test_unknown_tokens_and_bad_input():
    model = small().fit(TEXT)
    assert np.isfinite(model.score("§§§ zzz"))           # unknown characters: the <unk> id
    assert len(model.generate(10, prompt="§§§", random_state=0)) == 10
    with pytest.raises(ValueError, match="no tokens: the text is empty"):
        small().fit("")
    with pytest.raises(ValueError, match="too few for one chunk of seq_length=12"):
        small().fit("abcab")
    with pytest.raises(ValueError, match="empty"):
        small().fit([])
    with pytest.raises(ValueError, match="no token seen at least min_count=5"):
        small(min_count=5).fit("abcd" * 4)
    with pytest.raises(TypeError, match="string"):
        small().fit(3.5)
    for bad in (-1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="temperature"):
            model.generate(5, temperature=bad)
    with pytest.raises(ValueError, match="n_tokens"):
        model.generate(-1)
    with pytest.raises(ValueError, match="top_k"):
        model.generate(5, top_k=0)
    with pytest.raises(ValueError, match="top_p"):
        model.generate(5, top_p=1.5)
    with pytest.raises(ValueError, match="fitted on text"):
        model.score([np.array([1, 2, 3])])
    for params, match in (({"seq_length": 0}, "seq_length"), ({"tokenizer": "bpe"}, "tokenizer"),
                          ({"embedding_dim": 0}, "embedding_dim"),
                          ({"embedding_dim": "wide"}, "embedding_dim"),
                          ({"embedding_dim": 2.5}, "embedding_dim"),
                          ({"max_vocab": 2}, "max_vocab"), ({"min_count": 0}, "min_count")):
        with pytest.raises(ValueError, match=match):
            small(**params).fit(TEXT)
    assert not hasattr(model, "stepper")


def test_word_tokenizer_and_token_id_documents():
    words = small(tokenizer="word", max_vocab=12).fit(TEXT)
    assert words.vocab_[:2] == ["<unk>", "<eos>"] and len(words.vocab_) == 12
    out = words.generate(20, prompt="the red", random_state=0)
    assert len(out.split()) >= 20 - out.count("\n")
    ids = [np.array([5, 6, 7, 5, 6, 8] * 20), np.array([7, 5, 6] * 30)]
    m = small().fit(ids)
    assert sorted(m.vocab_[2:]) == [5, 6, 7, 8]
    gen = m.generate(30, prompt=np.array([5, 6]), random_state=0)
    assert gen.dtype == np.int64 and set(gen.tolist()) <= {5, 6, 7, 8, -1}
    assert m.predict(np.array([5])) in (5, 6, 7, 8, "<eos>")
    with pytest.raises(ValueError, match="fitted on token ids"):
        m.score("text")


def test_model_files(tmp_path):
    model = small(embedding_dim=5, cell="gru").fit(TEXT)
    path = tmp_path / "m.crnnlm"
    model.save(path)
    back = crnn.load(path)
    assert isinstance(back, RNNLanguageModel) and back.vocab_ == model.vocab_
    assert back.score(TEXT[:200]) == model.score(TEXT[:200])
    assert back.generate(50, random_state=1) == model.generate(50, random_state=1)
    back.partial_fit(TEXT)
    model.partial_fit(TEXT)
    np.testing.assert_array_equal(back._theta, model._theta)
    with pytest.raises(TypeError, match="tokenizer"):
        small(tokenizer=str.split).fit(TEXT).save(tmp_path / "callable.crnnlm")


def test_sklearn_surface():
    model = small()
    assert clone(model).get_params() == model.get_params()
    assert model.__sklearn_tags__().input_tags.string


def test_command_line(tmp_path, capsys):
    from crnn.__main__ import main
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(generated_corpus(600, 3), encoding="utf-8")
    out = tmp_path / "m.crnnlm"
    assert main(["text", "train", str(corpus), "--out", str(out), "--epochs", "2",
                 "--hidden-size", "16", "--num-layers", "1", "--seq-length", "20"]) == 0
    log = capsys.readouterr().out
    assert log.count("Epoch ") == 2 and "validation loss" in log and "best validation" in log
    assert main(["text", "generate", str(out), "--prompt", "the ", "-n", "40",
                 "--temperature", "0.8", "--random-state", "1"]) == 0
    first = capsys.readouterr().out
    assert first.startswith("the ") and len(first) >= 44
    assert main(["text", "generate", str(out), "--prompt", "the ", "-n", "40",
                 "--temperature", "0.8", "--random-state", "1"]) == 0
    assert capsys.readouterr().out == first
    assert main(["text", "generate", str(tmp_path / "missing"), "-n", "3"]) == 1
    assert "no such file" in capsys.readouterr().err
    assert main(["text", "generate", str(out), "--temperature", "-1"]) == 1
    assert "temperature" in capsys.readouterr().err
    assert main(["text", "train", str(tmp_path / "missing.txt"), "--out", str(out)]) == 1


def test_callbacks_see_every_epoch_and_can_stop():
    from crnn._base.callbacks import HAVE_CALLBACKS
    if not HAVE_CALLBACKS:
        pytest.skip("scikit-learn < 1.9: no sklearn.callback")
    from callback_helpers import StopAfter

    seen = []

    class Record(StopAfter):
        def on_fit_task_end(self, estimator, context, *, fitted_estimator=None):
            if fitted_estimator is not None:
                seen.append((fitted_estimator.n_iter_,
                             fitted_estimator.score("the red owl sings.")))
            return super().on_fit_task_end(estimator, context,
                                           fitted_estimator=fitted_estimator)

    model = small(max_iter=6).set_callbacks(Record(3)).fit(TEXT)
    assert model.n_iter_ == 3
    # each epoch's model, then the root task's (the fitted model)
    assert [n for n, _ in seen] == [1, 2, 3, 3]
    assert seen[2][1] == pytest.approx(model.score("the red owl sings."), rel=1e-6)
    assert seen[0][1] != seen[2][1]
    assert "_callback_fit_ctx" not in model.__dict__


def test_the_default_input_is_an_embedding_as_wide_as_the_hidden_layers():
    """Issue 26: one-hot input columns start ten times weaker than an
    embedding's rows and learned slowly; the default is the embedding."""
    model = small().fit(TEXT)
    sd = model.state_dict()
    assert model.embedding_dim == "auto"
    assert sd["embedding.weight"].shape == (len(model.vocab_), 24)
    assert sd["rnn.weight_ih_l0"].shape == (4 * 24, 24)
    one_hot = small(embedding_dim=None).fit(TEXT).state_dict()
    assert "embedding.weight" not in one_hot
    assert one_hot["rnn.weight_ih_l0"].shape == (4 * 24, len(model.vocab_))
    assert small(embedding_dim=7).fit(TEXT).state_dict()["embedding.weight"].shape[1] == 7


def test_a_file_of_a_one_hot_model_loads_as_one_hot(tmp_path):
    model = small(embedding_dim=None).fit(TEXT)
    model.save(tmp_path / "m.crnnlm")
    back = crnn.load(tmp_path / "m.crnnlm")
    assert back.embedding_dim is None and "embedding.weight" not in back.state_dict()
    assert back.score(TEXT[:200]) == model.score(TEXT[:200])


@pytest.mark.parametrize("option, width", [([], 16), (["--embedding-dim", "none"], 0),
                                           (["--embedding-dim", "5"], 5)])
def test_the_command_line_embedding_option(tmp_path, capsys, option, width):
    from crnn.__main__ import main
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(generated_corpus(200, 4), encoding="utf-8")
    out = tmp_path / "m.crnnlm"
    assert main(["text", "train", str(corpus), "--out", str(out), "--epochs", "1",
                 "--hidden-size", "16", "--num-layers", "1", "--seq-length", "20",
                 *option]) == 0
    sd = crnn.load(out).state_dict()
    assert (sd["embedding.weight"].shape[1] if "embedding.weight" in sd else 0) == width
