"""Hostile input for the text models (RNNLanguageModel, RNNTranslator) and
RNNTranscriber: token-id domains, vocabularies of the special tokens only,
crafted model files, resource requests, and unclear errors.  Every model
here is tiny and trains for one epoch."""
import hashlib
import io
import json
import warnings
import zipfile

import numpy as np
import pytest

import crnn
from crnn import ModelFileError, RNNLanguageModel, RNNTranscriber, RNNTranslator
from crnn._translation import translator as _translator
from crnn._nn.layout import Layout
from crnn._nn.seq2seq import Seq2SeqLayout

TEXT = "the cat sat on the mat. the dog sat on the log. " * 4
IDS = [np.array([3, 4, 5, 3, 4, 5, 6, 7, 3, 4] * 3), np.array([5, 6, 7, 3, 4, 5] * 3)]


def lm(**kw):
    params = dict(hidden_size=8, num_layers=1, seq_length=5, batch_size=2, max_iter=1,
                  random_state=0)
    params.update(kw)
    return RNNLanguageModel(**params)


def translator(**kw):
    params = dict(hidden_size=4, embedding_dim=3, max_iter=1, random_state=0)
    params.update(kw)
    return RNNTranslator(**params)


PAIRS = (["a b", "b c", "c a", "a c b"], ["x y", "y z", "z x", "x z y"])


# ---------------------------------------------------------------------------
# model files: copy a file with its model.json (and arrays) edited, the
# checksums recomputed as a careful forger would


def _rewrite(src, dst, edit=None, arrays=None):
    with zipfile.ZipFile(src) as zf:
        man = json.loads(zf.read("model.json"))
        data = {n: zf.read(n) for n in zf.namelist() if n != "model.json"}
    if edit is not None:
        edit(man)
    for name, arr in (arrays(man) if arrays else {}).items():
        buf = io.BytesIO()
        np.lib.format.write_array(buf, arr, allow_pickle=False)
        data[man["attributes"][name]["file"]] = buf.getvalue()
    man["members"] = {n: hashlib.sha256(b).hexdigest() for n, b in data.items()}
    with zipfile.ZipFile(dst, "w") as zf:
        zf.writestr("model.json", json.dumps(man))
        for n, b in data.items():
            zf.writestr(n, b)
    return dst


def _weights_for(layout_cls):
    """Arrays of the right size for the (edited) network of a manifest:
    zero weights and optimizer state, so that only the vocabulary is wrong."""
    def arrays(man):
        desc = {k: v for k, v in man["attributes"]["_layout"].items() if k != "$"}
        n = layout_cls(**desc).n_params
        return {name: np.zeros(n, np.float32) for name in ("_theta", "_opt_m", "_opt_v")}
    return arrays


# ---------------------------------------------------------------------------
# RNNLanguageModel: token ids


def test_lm_token_id_model_generates_from_the_default_prompt():
    m = lm().fit(IDS)
    out = m.generate(10, random_state=0)             # prompt="" (a new document)
    assert out.dtype == np.int64 and out.shape == (10,)
    assert set(out.tolist()) <= {3, 4, 5, 6, 7, -1}
    np.testing.assert_array_equal(
        out, m.generate(10, prompt=np.zeros(0, np.int64), random_state=0))
    np.testing.assert_array_equal(out, m.generate(10, prompt=[], random_state=0))
    assert m.generate(0).shape == (0,)
    # "" is the start of a document for predict too
    np.testing.assert_array_equal(m.predict_proba(""), m.predict_proba(np.zeros(0, int)))
    assert m.predict("") in (3, 4, 5, 6, 7, "<eos>")
    with pytest.raises(ValueError, match="fitted on token ids"):
        m.generate(5, prompt="3 4")
    with pytest.raises(TypeError, match="one prompt"):
        lm().fit(TEXT).generate(5, prompt=["the", "cat"])


@pytest.mark.parametrize("bad,value", [
    (np.array([3, 2**63], dtype=np.uint64), "9223372036854775808"),
    (np.array([2**64 - 1, 4], dtype=np.uint64), "18446744073709551615"),
    (np.array([-1, 3, 4]), "-1"),
    ([3, 2**64], "18446744073709551616"),
], ids=["uint64 2**63", "uint64 max", "negative", "python int 2**64"])
def test_lm_token_ids_outside_the_domain_are_refused(bad, value):
    m = lm().fit(IDS)
    theta, vocab = m._theta.copy(), m.vocab_
    for call in (lambda: m.fit([bad] + IDS), lambda: m.partial_fit([bad]),
                 lambda: m.score([bad]), lambda: m.predict(bad if isinstance(bad, np.ndarray)
                                                           else [np.array(bad, dtype=object)]),
                 lambda: m.generate(3, prompt=bad)):
        with pytest.raises(ValueError, match=f"token id {value}; token ids are integers in"):
            call()
    # nothing changed: the model is as fitted
    np.testing.assert_array_equal(m._theta, theta)
    assert m.vocab_ is vocab
    with pytest.raises(ValueError, match=f"token id {value}"):
        lm().fit([bad] + IDS)


def test_lm_generated_end_marker_is_no_token_id():
    # -1 marks the end of a document in what generate returns: no token may be -1
    with pytest.raises(ValueError, match="token id -1"):
        lm().fit([np.array([-1, 3, 4, 5] * 5)])
    m = lm(max_iter=2).fit([np.array([0, 1, 2] * 10)])      # ids 0, 1 are ordinary tokens
    assert sorted(m.vocab_[2:]) == [0, 1, 2]
    out = m.generate(30, random_state=0)
    assert set(out.tolist()) <= {0, 1, 2, -1}


def test_lm_generate_refuses_huge_requests_before_any_work():
    m = lm().fit(TEXT)
    for n in (10**9, 2**24 + 1):             # the documented bound: 2**24 tokens a call
        with pytest.raises(ValueError, match=r"n_tokens must be an integer in \[0, 16777216\]"):
            m.generate(n)
        with pytest.raises(ValueError, match="n_tokens"):
            m.generate(n, top_k=3)


def test_lm_sampling_parameters():
    m = lm().fit(TEXT)
    for kw, match in (({"temperature": float("nan")}, "temperature"),
                      ({"temperature": -0.5}, "temperature"),
                      ({"temperature": True}, "temperature"),
                      ({"top_k": 0}, "top_k"), ({"top_k": 2.0}, "top_k"),
                      ({"top_p": float("nan")}, "top_p"), ({"top_p": 0.0}, "top_p")):
        with pytest.raises(ValueError, match=match):
            m.generate(3, **kw)
    # temperature 0 is greedy whichever path samples; unknown prompt tokens read as <unk>
    greedy = m.generate(8, temperature=0)
    assert greedy == m.generate(8, temperature=0, top_k=len(m.vocab_))
    assert len(m.generate(5, prompt="§§ zz", random_state=0)) == 5


def test_lm_callable_tokenizer_must_return_a_list_of_strings():
    for bad, match in ((lambda s: 5, "got int"), (lambda s: None, "got NoneType"),
                       (lambda s: s, "got str"), (lambda s: [b"a"], "holding a bytes"),
                       (lambda s: [1, 2], "holding a int")):
        with pytest.raises(TypeError, match="tokenizer callable must return a list of strings"):
            lm(tokenizer=bad).fit(TEXT)
        with pytest.raises(TypeError, match=match):
            lm(tokenizer=bad).fit(TEXT)
    # any iterable of strings is read once, whole (a generator too)
    listed = lm(tokenizer=lambda s: s.split()).fit(TEXT)
    generated = lm(tokenizer=lambda s: (w for w in s.split())).fit(TEXT)
    assert generated.vocab_ == listed.vocab_
    np.testing.assert_array_equal(generated._theta, listed._theta)


def test_lm_vocabulary_of_the_special_tokens_only_is_refused():
    with pytest.raises(ValueError, match="no tokens"):
        lm().fit(["", ""])
    sd = lm().fit("ab" * 20).state_dict()
    # the weights of a network over the two special tokens only
    two = {k: v[:2] if k.startswith("head.") else v[:, :2] if k == "rnn.weight_ih_l0" else v
           for k, v in sd.items()}
    with pytest.raises(ValueError, match="only the special tokens"):
        lm().load_state_dict(two, vocab=["<unk>", "<eos>"])
    with pytest.raises(ValueError, match="single characters"):
        lm().load_state_dict(sd, vocab=["<unk>", "<eos>", "ab", "b"])
    ok = lm().load_state_dict(sd, vocab=np.array(["<unk>", "<eos>", "a", "b"], dtype=object))
    assert ok.vocab_ == ["<unk>", "<eos>", "a", "b"] and len(ok.generate(4)) == 4


@pytest.fixture(scope="module")
def lm_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("lm")
    text, ids = lm().fit(TEXT), lm(embedding_dim=3).fit(IDS)
    text.save(d / "text.crnn")
    ids.save(d / "ids.crnn")
    return d, text, ids


def test_lm_valid_files_load_and_behave_identically(lm_files):
    d, text, ids = lm_files
    for path, m, prompt in ((d / "text.crnn", text, "the "), (d / "ids.crnn", ids, [3, 4])):
        back = crnn.load(path)
        assert back.vocab_ == m.vocab_
        out, want = back.generate(20, prompt=prompt, random_state=3), \
            m.generate(20, prompt=prompt, random_state=3)
        assert out == want if isinstance(out, str) else np.array_equal(out, want)
        assert back.score(TEXT if m is text else IDS) == m.score(TEXT if m is text else IDS)
        np.testing.assert_array_equal(back.predict_proba(""), m.predict_proba(""))


def _specials_only(man):
    a = man["attributes"]
    a["vocab_"] = a["vocab_"][:2]
    a["n_features_in_"] = a["n_outputs_"] = 2
    a["_layout"].update(n_features=2, n_outputs=2)


@pytest.mark.parametrize("which,edit,arrays,message", [
    ("text", _specials_only, _weights_for(Layout), "only the special tokens"),
    ("ids", _specials_only, _weights_for(Layout), "only the special tokens"),
    ("text", lambda m: m["attributes"]["vocab_"].__setitem__(2, 7), None,
     "strings only or integers only"),
    ("ids", lambda m: m["attributes"]["vocab_"].__setitem__(2, "a"), None,
     "strings only or integers only"),
    ("ids", lambda m: m["attributes"]["vocab_"].__setitem__(2, -1), None, "outside"),
    ("ids", lambda m: m["attributes"]["vocab_"].__setitem__(2, 2**63), None, "outside"),
    ("ids", lambda m: m["attributes"]["vocab_"].__setitem__(2, True), None, "vocab"),
    ("ids", lambda m: m["attributes"]["vocab_"].__setitem__(
        2, {"$": "np_scalar", "dtype": "<i8", "value": 3}), None, "vocab"),
    ("text", lambda m: m["attributes"]["vocab_"].__setitem__(3, m["attributes"]["vocab_"][2]),
     None, "vocab"),
    ("text", lambda m: m["attributes"]["vocab_"].__setitem__(2, "ab"), None,
     "single characters"),
    ("text", lambda m: m["attributes"]["vocab_"].__setitem__(1, "x"), None, "vocab"),
    ("text", lambda m: m["attributes"].__setitem__("vocab_", "abc"), None, "not a list"),
    ("text", lambda m: m["attributes"]["vocab_"].__setitem__(2, ["a"]), None, "list"),
    ("text", lambda m: m["attributes"].__setitem__("_return_sequences", False), None,
     "output per token"),
], ids=["text: specials only", "ids: specials only", "text: an int token",
        "ids: a str token", "ids: -1", "ids: 2**63", "ids: a bool", "ids: a numpy int",
        "repeated token", "char: two characters", "specials changed", "not a list",
        "a list token", "no output per token"])
def test_lm_crafted_files_are_refused(lm_files, tmp_path, which, edit, arrays, message):
    d, _, _ = lm_files
    bad = _rewrite(d / f"{which}.crnn", tmp_path / "bad.crnn", edit, arrays)
    with pytest.raises(ModelFileError, match=message):
        crnn.load(bad)


def test_lm_empty_validation_text_is_a_clear_error():
    with pytest.raises(ValueError, match="X_val holds no tokens"):
        lm(early_stopping=True).fit(TEXT, X_val=[""])
    m = lm().fit(TEXT)
    theta = m._theta.copy()
    with pytest.raises(ValueError, match="X_val holds no tokens"):
        m.set_params(warm_start=True, early_stopping=True).fit(TEXT, X_val="")
    np.testing.assert_array_equal(m._theta, theta)
    assert np.isfinite(lm(early_stopping=True).fit(TEXT, X_val=["", "t"]).best_validation_score_)


# ---------------------------------------------------------------------------
# RNNTranslator


def test_translator_empty_validation_set_is_a_clear_error():
    with pytest.raises(ValueError, match="X_val is empty"):
        translator(early_stopping=True).fit(*PAIRS, X_val=[], y_val=[])


@pytest.fixture(scope="module")
def tr_file(tmp_path_factory):
    m = translator().fit(*PAIRS)
    path = tmp_path_factory.mktemp("tr") / "t.crnn"
    m.save(path)
    return path, m


def test_translator_score_of_no_sentences_is_a_clear_error(tr_file):
    _, m = tr_file
    with pytest.raises(ValueError, match="empty: there is no sentence to score"):
        m.score([], [])
    assert len(m.predict([])) == 0
    # references that are not sentences are refused, not turned into text
    with pytest.raises(TypeError, match=r"y\[0\]"):
        m.score(["a b", "b c"], [None, None])
    with pytest.raises(ValueError, match="translations are text"):
        m.score(["a b"], [np.array([3, 4])])
    assert 0.0 <= m.score(["a b"], ["x y"]) <= 100.0


def test_translator_vocabulary_of_the_special_tokens_only_is_refused_at_fit():
    with pytest.raises(ValueError, match="target vocabulary would hold only the special"):
        translator().fit(["a b", "c"], ["", ""])
    with pytest.raises(ValueError, match="target vocabulary would hold only the special"):
        translator().fit([np.array([3]), np.array([4])], [np.zeros(0, int)] * 2)
    with pytest.raises(ValueError, match="source vocabulary would hold only the special"):
        translator(min_count=5).fit(["a b", "c"], ["x", "y"])


def _tgt_specials(n):
    def edit(man):
        a = man["attributes"]
        a["tgt_vocab_"] = a["tgt_vocab_"][:n]
        a["n_outputs_"] = n
        a["_layout"]["tgt_vocab"] = n
    return edit


def _src_specials(man):
    a = man["attributes"]
    a["src_vocab_"] = a["src_vocab_"][:2]
    a["n_features_in_"] = 2
    a["_layout"]["src_vocab"] = 2


def _set(name, i, value):
    return lambda m: m["attributes"][name].__setitem__(i, value)


@pytest.mark.parametrize("edit,arrays,message", [
    (_tgt_specials(3), _weights_for(Seq2SeqLayout), "tgt_vocab_ holds only the special"),
    (_tgt_specials(2), _weights_for(Seq2SeqLayout), "tgt_vocab_ does not start"),
    (_src_specials, _weights_for(Seq2SeqLayout), "src_vocab_ holds only the special"),
    (_set("tgt_vocab_", 3, 7), None, "tgt_vocab_ must hold strings only or integers only"),
    (_set("src_vocab_", 2, 7), None, "src_vocab_ must hold strings only or integers only"),
    (_set("tgt_vocab_", 3, "<bos>"), None, "vocab"),
    (_set("tgt_vocab_", 2, "w"), None, "tgt_vocab_"),
    (_set("src_vocab_", 0, 0), None, "vocab"),
    (_set("src_vocab_", 2, ""), None, "empty token"),
    (lambda m: m["attributes"].__setitem__("_return_sequences", False), None,
     "output per target token"),
], ids=["tgt: specials only", "tgt: no <bos>", "src: specials only", "tgt: an int",
        "src: an int", "tgt: <bos> twice", "tgt: <bos> replaced", "src: <unk> replaced",
        "word: empty token", "no output per token"])
def test_translator_crafted_files_are_refused(tr_file, tmp_path, edit, arrays, message):
    path, m = tr_file
    back = crnn.load(path)
    assert list(back.predict(["a b", "c a"])) == list(m.predict(["a b", "c a"]))
    bad = _rewrite(path, tmp_path / "bad.crnn", edit, arrays)
    with pytest.raises(ModelFileError, match=message):
        crnn.load(bad)


def test_translator_crafted_token_id_vocabularies(tmp_path):
    X = [np.array([3, 4]), np.array([4, 5]), np.array([5, 3])]
    y = [np.array([7, 8]), np.array([8, 9]), np.array([9, 7])]
    m = translator().fit(X, y)
    path = tmp_path / "ids.crnn"
    m.save(path)
    back = crnn.load(path)
    for a, b in zip(back.predict(X), m.predict(X)):
        np.testing.assert_array_equal(a, b)
    for edit, message in ((_set("tgt_vocab_", 3, -1), "outside"),
                          (_set("src_vocab_", 2, 2**63), "outside"),
                          (_set("tgt_vocab_", 4, "x"), "strings only or integers only")):
        with pytest.raises(ModelFileError, match=message):
            crnn.load(_rewrite(path, tmp_path / "bad.crnn", edit))


def test_translator_char_tokenizer_vocabulary_in_a_file(tmp_path):
    m = translator(src_tokenizer="char", tgt_tokenizer="char").fit(*PAIRS)
    path = tmp_path / "c.crnn"
    m.save(path)
    assert list(crnn.load(path).predict(["ab"])) == list(m.predict(["ab"]))
    with pytest.raises(ModelFileError, match="src_vocab_ holds tokens that are not single"):
        crnn.load(_rewrite(path, tmp_path / "bad.crnn",
                           lambda man: man["attributes"]["src_vocab_"].__setitem__(2, "ab")))


def test_translator_token_ids_outside_the_domain_are_refused():
    X = [np.array([3, 4]), np.array([4, 5])]
    with pytest.raises(ValueError, match=r"y\[0\] holds the token id -1"):
        translator().fit(X, [np.array([-1, 7]), np.array([8])])
    with pytest.raises(ValueError, match=r"X\[1\] holds the token id 9223372036854775808"):
        translator().fit([X[0], np.array([2**63], dtype=np.uint64)], [np.array([7])] * 2)
    m = translator().fit(X, [np.array([7, 8]), np.array([8])])
    with pytest.raises(ValueError, match="token id 18446744073709551615"):
        m.predict([np.array([2**64 - 1], dtype=np.uint64)])


def test_translator_callable_tokenizer_must_return_a_list_of_strings():
    with pytest.raises(TypeError, match="list of strings; got int"):
        translator(src_tokenizer=lambda s: 5).fit(*PAIRS)
    with pytest.raises(TypeError, match="holding a int"):
        translator(tgt_tokenizer=lambda s: [len(s)]).fit(*PAIRS)


def test_translator_output_length_and_beam_are_bounded(tr_file, monkeypatch):
    _, m = tr_file
    for n in (2**31 - 1, 2**20 + 1):
        with pytest.raises(ValueError, match="max_output_length"):
            translator(max_output_length=n).fit(*PAIRS)
        with pytest.raises(ValueError, match="max_output_length"):
            crnn.load(tr_file[0]).set_params(max_output_length=n).predict(["a b"])
    with pytest.raises(ValueError, match="beam_size"):
        translator(beam_size=2**16 + 1).fit(*PAIRS)
    long = " ".join(["a b c"] * 300)
    # beam search over 65536 hypotheses of a 900-token sentence: refused with
    # the estimate before any buffer is allocated (this machine's memory
    # pretended to be 1 GiB so that the test is the same on every machine)
    monkeypatch.setattr(_translator._threads, "physical_memory", lambda: 2**30)
    big = crnn.load(tr_file[0]).set_params(beam_size=65536)
    with pytest.raises(ValueError, match=r"beam_size=65536 would need about .* GiB of memory"):
        big.predict([long])
    assert big.set_params(beam_size=2).predict([long])[0] == \
        m.set_params(beam_size=2).predict([long])[0]
    m.set_params(beam_size=1)
    # greedy decoding of many long translations is refused too when the
    # machine cannot hold its buffers...
    monkeypatch.setattr(_translator._threads, "physical_memory", lambda: 2**20)
    with pytest.raises(ValueError, match="beam_size=1 would need about"):
        crnn.load(tr_file[0]).set_params(max_output_length=2**20).predict(["a b"])


def test_translator_greedy_groups_give_the_same_translations(tr_file, monkeypatch):
    _, m = tr_file
    rng = np.random.default_rng(0)
    X = [" ".join(rng.choice(list("abc"), rng.integers(1, 9))) for _ in range(40)]
    want = list(m.predict(X))
    monkeypatch.setattr(_translator, "_GREEDY_OUT_CELLS", 50)   # groups of a few sentences
    assert list(m.predict(X)) == want
    monkeypatch.setattr(_translator, "_GREEDY_OUT_CELLS", 1)    # one sentence at a time
    assert list(m.set_params(max_output_length=7).predict(X)) == \
        list(crnn.load(tr_file[0]).set_params(max_output_length=7).predict(X))
    m.set_params(max_output_length=None)


def test_translator_attention_weights_check_the_kinds(tr_file):
    _, m = tr_file
    w, src, tgt = m.attention_weights("a b")
    assert w.shape == (len(tgt), len(src)) and tgt[-1] == "<eos>"
    with pytest.raises(ValueError, match="fitted on text"):
        m.attention_weights(np.array([3, 4]))
    with pytest.raises(ValueError, match="translations are text"):
        m.attention_weights("a b", np.array([3]))


# ---------------------------------------------------------------------------
# RNNTranscriber


def _frames(n=4, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.normal(size=(6, 2)).astype(np.float32) for _ in range(n)]


def transcriber(**kw):
    params = dict(hidden_size=3, num_layers=1, max_iter=1, random_state=0)
    params.update(kw)
    return RNNTranscriber(**params)


def test_transcriber_labels_beyond_int64_are_refused_at_fit():
    X = _frames(3)
    with pytest.raises(ValueError, match="label 18446744073709551616.*int64"):
        transcriber(alphabet=[1, 2**64]).fit(X, [[1], [2**64], [1]])
    with pytest.raises(ValueError, match="label 9223372036854775808.*int64"):
        transcriber().fit(X, [np.array([2**63], dtype=np.uint64), np.array([1]),
                              np.array([1])])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = transcriber(alphabet=[-2**63, 2**63 - 1]).fit(X, [[-2**63], [2**63 - 1], []])
    assert all(t.dtype == np.int64 for t in m.predict(X))


@pytest.mark.parametrize("edit,message", [
    (_set("alphabet_", 1, 2**63), "int64"),
    (_set("alphabet_", 1, {"$": "np_scalar", "dtype": "<i8", "value": 5}), "integers only"),
    (_set("alphabet_", 1, True), "integers"),
], ids=["2**63", "numpy int", "bool"])
def test_transcriber_crafted_alphabets_are_refused(tmp_path, edit, message):
    X = _frames()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = transcriber().fit(X, [[1, 2], [2], [1], [2, 1]])
    path = tmp_path / "t.crnn"
    m.save(path)
    back = crnn.load(path)
    for a, b in zip(back.predict(X), m.predict(X)):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ModelFileError, match=message):
        crnn.load(_rewrite(path, tmp_path / "bad.crnn", edit))


def test_lm_a_bool_among_python_int_ids_is_refused():
    """numpy turned [True, 1] into [1, 1]: a bool became token id 1."""
    with pytest.raises(TypeError, match="bool"):
        RNNLanguageModel(hidden_size=4, num_layers=1, seq_length=5,
                         max_iter=1).fit([[True, 1] * 4])
