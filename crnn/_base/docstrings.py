"""The estimators' parameter documentation, written once.

``SHARED`` holds the numpydoc entry of every parameter that several
estimators take (the network, the solver, training controls).
``document_parameters`` is a class decorator: it rebuilds the class
docstring's Parameters section with one entry per ``__init__`` parameter in
the signature's order, the class's own entries where its docstring has
them (an own entry with no text takes the shared text) and the shared ones
elsewhere, with the class's own default.  A parameter with neither is an
error at import time, so ``help()`` on any estimator shows every parameter
(statsmodels' shared docstrings are the model).
"""
import ast
import inspect
import re

import numpy as np

SHARED_TEXT = """\
    cell : {"rnn", "gru", "lstm"}, default="rnn"
        Recurrent cell: Elman, GRU (gates r, z, n; b_hn inside the reset
        product) or LSTM (gates i, f, g, o), as torch.nn.RNN / GRU / LSTM.
    hidden_size : int, default=32
        Hidden units per layer (per direction in a bidirectional layer).
    num_layers : int, default=1
        Stacked recurrent layers.
    nonlinearity : {"tanh", "relu"}, default="tanh"
        The Elman cell's nonlinearity (GRU and LSTM ignore it).
    bidirectional : bool, default=False
        Run a second recurrence backwards in time in every layer (PyTorch's
        convention: the next layer reads both directions concatenated; the
        many-to-one head reads the forward state after the last step and the
        backward state after its last step, time 0).
    dropout : float in [0, 1), default=0.0
        Dropout on the outputs of every recurrent layer but the last, in
        training only, as ``nn.RNN(dropout=p)`` (kept values are scaled by
        1 / (1 - p)); no effect with one layer.  The masks come from
        random_state and do not depend on n_jobs.
    forget_bias : float, default=1.0
        Added to the LSTM forget gate's input bias at initialisation, as
        Keras's ``unit_forget_bias`` (Jozefowicz et al. 2015); 0 gives
        PyTorch's initialisation.  Other cells ignore it.
    return_sequences : bool, default=False
        False: one prediction per sequence.  True: a prediction at every
        step (targets per step).
    solver : {"adam", "sgd"}, default="adam"
        torch.optim.Adam / torch.optim.SGD update rules.
    learning_rate : {"constant", "invscaling", "adaptive", "cosine"}, default="constant"
        Schedule of the step size, for either solver: "constant" keeps
        learning_rate_init; "invscaling" uses ``learning_rate_init / (t_ +
        1) ** power_t`` for each epoch (``t_``: samples seen before it);
        "adaptive" keeps learning_rate_init while the training loss (or the
        validation score) improves, and each time n_iter_no_change epochs in
        a row fail to improve it by tol divides the rate by 5 instead of
        stopping, until the rate is at most 1e-6 (scikit-learn MLP's rules);
        "cosine" decays it to zero over max_iter epochs,
        ``learning_rate_init * (1 + cos(pi * epoch / max_iter)) / 2``
        (torch.optim.lr_scheduler.CosineAnnealingLR).  The rate of every
        epoch is in ``learning_rate_curve_``.
    learning_rate_init : float, default=1e-3
        The initial step size (of every epoch with the "constant" schedule).
    power_t : float, default=0.5
        Exponent of the "invscaling" schedule.
    batch_size : int, default=32
        Mini-batch size, clipped to the number of samples.
    max_iter : int, default=200
        Epochs.
    alpha : float, default=0.0
        L2 penalty on the weight matrices (not the biases), as in
        scikit-learn's MLP: ``alpha / 2 * ||W||^2`` divided by the batch's
        total weight of loss terms (its samples, or its steps where every
        step has a target), i.e. torch's ``weight_decay = alpha /
        batch_size`` on the weights.
    clip_norm : float or None, default=5.0
        Clip the global gradient 2-norm of each batch to this value
        (``torch.nn.utils.clip_grad_norm_``); None turns clipping off.
    bptt_truncate : int or None, default=None
        Truncated BPTT: the gradient reaching a layer's state h_t (from the
        loss or the layer above) is carried back through at most this many
        steps of the recurrence.  None: full BPTT.
    momentum : float, default=0.9
        SGD momentum.
    nesterovs_momentum : bool, default=True
        Nesterov's momentum for SGD.
    beta_1 : float in [0, 1), default=0.9
        Adam's decay rate of the first moment (the mean of the gradients).
    beta_2 : float in [0, 1), default=0.999
        Adam's decay rate of the second moment (the mean of the squared
        gradients).
    epsilon : float, default=1e-8
        Adam's term added to the square root of the second moment.
    early_stopping : bool, default=False
        Score a validation set after each epoch (``validation_fraction`` of
        the data held out, stratified for many-to-one classification, or
        fit's X_val), stop when its score has not improved by ``tol`` for
        ``n_iter_no_change`` epochs, and keep the weights of the best epoch.
    validation_fraction : float in (0, 1), default=0.1
        Share of the training data held out for early stopping (unless
        fit's X_val is given).
    n_iter_no_change : int, default=10
        Epochs in a row without an improvement of ``tol`` (of the validation
        score with early stopping, else of the training loss) before
        training stops (or the "adaptive" schedule lowers the rate).
    tol : float, default=1e-4
        Without early stopping, training stops when the training loss has
        not improved by ``tol`` for ``n_iter_no_change`` epochs.
    shuffle : bool, default=True
        Shuffle samples every epoch.
    random_state : int, RandomState or None, default=None
        Weight initialisation, shuffling, dropout masks and the validation
        split.  A given random_state and n_jobs give the same model bit for
        bit.
    verbose : int, default=0
        1: one line per epoch (loss, validation loss and score, seconds).
        For a progress bar, use ``set_callbacks(ProgressBar())``
        (scikit-learn >= 1.9).
    warm_start : bool, default=False
        fit continues from the current weights (with a new optimizer and
        schedule).
    n_jobs : int or None, default=None
        Threads of the kernels, counted as scikit-learn does: None uses
        every core available to the process (CPU affinity and container
        quotas respected; OMP_NUM_THREADS overrides), -1 too, -2 all but
        one.
    dtype : numpy.float32 or numpy.float64, default=numpy.float32
        Precision of the weights and of all computation.
    compute_dtype : None or "bfloat16", default=None
        None: compute in ``dtype``.  "bfloat16" (with float32 ``dtype``):
        mixed precision on CPUs with AVX512-BF16 (AMD Zen 4 and later,
        Intel Cooper Lake, Sapphire Rapids and later; a clear error
        elsewhere): every matrix product of the network, forward and
        backward, multiplies bfloat16-rounded operands and sums in float32;
        weights, optimizer state, cells, losses and gradient sums stay
        float32.  Like ``n_jobs`` it applies to predict as set at the time,
        so a model trained either way predicts either way.
    conv : list of tuples or dicts, or None, default=None
        A convolutional front-end, trained with the network: X then holds
        a frame per step, (n_samples, n_timesteps, height, width[,
        channels]) or a list of (n_timesteps_i, height, width[, channels])
        arrays.  One entry per convolution, ``(filters, kernel, stride)``
        or a dict with the keys ``filters``, ``kernel``, ``stride``
        (default 1), ``padding`` (default 0) and ``pool`` (max pooling with
        that kernel and stride after the ReLU); kernel, stride, padding and
        pool are ints or (height, width) pairs.  Each frame's last feature
        map, flattened in (height, width, channels) order, is the
        network's input at its step.  None: X holds feature vectors.
        With compute_dtype="bfloat16" the convolutions compute in float32.
"""

_HEADER = re.compile(r"^    (\w[\w, ]*?)(?: : (.*))?$")
_SECTION = re.compile(r"^    (\w[\w ]*)\n    -{3,}$", re.M)


def _entries(text):
    """numpydoc entries -> list of (names, type-and-default or None, body)."""
    out = []
    for line in text.splitlines():
        m = _HEADER.match(line)
        if m and not line.startswith("        "):
            names = tuple(n.strip() for n in m.group(1).split(","))
            out.append([names, m.group(2), []])
        elif out:
            out[-1][2].append(line)
    for e in out:
        while e[2] and not e[2][-1].strip():
            e[2].pop()
    return out


SHARED = {e[0][0]: (e[1], e[2]) for e in _entries(SHARED_TEXT)}


def _parse_default(text):
    if text.startswith("numpy."):
        return getattr(np, text[len("numpy."):])
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def _format_default(v):
    if isinstance(v, str):
        return f'"{v}"'
    if isinstance(v, type) and issubclass(v, np.generic):
        return f"numpy.{v.__name__}"
    return repr(v)


def _names_default(text, default):
    """The "default=" text of a docstring names this default value."""
    named = _parse_default(text)
    return named is default or (type(named) is type(default) and named == default)


def _shared_entry(name, default):
    kind, body = SHARED[name]
    head, _, text = kind.partition(", default=")
    if not _names_default(text, default):
        text = _format_default(default)
    return f"    {name} : {head}, default={text}", body


def _check_own_default(cls, entry, signature):
    """An own entry's "default=..." must be the signature's default (a
    TypeError at import otherwise: documentation that lies)."""
    names, kind, _ = entry
    if not kind or ", default=" not in kind or len(names) > 1:
        return
    text = kind.rpartition(", default=")[2]
    default = signature[names[0]].default
    if not _names_default(text, default):
        raise TypeError(f"{cls.__name__}'s docstring gives {names[0]} the default {text}; "
                        f"its signature's is {default!r}")


def document_parameters(cls):
    """Rebuild cls's Parameters section (see the module docstring)."""
    doc = cls.__doc__
    if doc is None:                       # python -OO strips docstrings
        return cls
    marker = "    Parameters\n    ----------\n"
    if marker not in doc:
        raise TypeError(f"{cls.__name__}'s docstring has no Parameters section")
    head, rest = doc.split(marker, 1)
    m = _SECTION.search(rest)
    section, tail = (rest[:m.start()], rest[m.start():]) if m else (rest, "")
    own = _entries(section)
    signature = inspect.signature(cls.__init__).parameters
    params = [p for p in signature if p != "self"]
    by_name = {n: e for e in own for n in e[0]}
    unknown = set(by_name) - set(params)
    if unknown:
        raise TypeError(f"{cls.__name__}'s docstring documents {sorted(unknown)}, which "
                        "are not parameters")
    lines, done = [], set()
    for p in params:
        if p in done:
            continue
        entry = by_name.get(p)
        if entry is not None:
            _check_own_default(cls, entry, signature)
        if entry is not None and (entry[2] or len(entry[0]) > 1 or p not in SHARED):
            names, kind, body = entry
            lines.append(f"    {', '.join(names)}" + (f" : {kind}" if kind else ""))
            done.update(names)
        elif p in SHARED:
            header, body = _shared_entry(p, signature[p].default)
            if entry is not None and entry[1]:        # own type and default, shared text
                header = f"    {p} : {entry[1]}"
            lines.append(header)
            done.add(p)
        else:
            raise TypeError(f"{cls.__name__}'s parameter {p!r} is documented nowhere")
        lines.extend(body)
    cls.__doc__ = head + marker + "\n".join(lines) + "\n" + (
        "\n" + tail if tail and not tail.startswith("\n") else tail)
    return cls
