"""Export a fitted estimator to ONNX with the standard RNN / GRU / LSTM
operators (``pip install crnn[onnx]``).

The graph, for X of shape (batch, time, n_features), float32:

- X is transposed to ONNX's (time, batch, features) layout;
- each layer is one ``RNN`` / ``GRU`` / ``LSTM`` node (``direction`` forward or
  bidirectional), its output (time, ndir, batch, hidden) reshaped to
  (time, batch, ndir * hidden) for the next layer;
- the head reads the last step (the final hidden state ``Y_h`` of each
  direction: the forward one at each sequence's last step, the reverse one at
  step 0, as crnn's kernels do) or, with return_sequences, every step;
- the classifier ends in ``Softmax`` (output ``probabilities``) and an
  ``ArgMax`` looked up in ``classes_`` (output ``label``); the regressor's
  output is ``predictions``, shaped as ``predict`` shapes it.

Weights are stored as PyTorch orders the gates; ONNX orders them i, o, f, c
(LSTM) and z, r, h (GRU, with ``linear_before_reset=1``, PyTorch's
convention), so the blocks are reordered here.  Batch and time are dynamic
dimensions; with ``sequence_lens=True`` the graph takes a second input,
``sequence_lens`` (int32, one length per sequence), for zero-padded batches
of sequences of different lengths.

A model with a convolutional front-end (``conv``) takes frames, X of shape
(batch, time, height, width, channels): the frames are reshaped to one
batch of images, transposed to NCHW, run through ``Conv`` (+ ``Relu``, +
``MaxPool``) per layer, and their last feature maps, flattened in (height,
width, channels) order as crnn's kernels flatten them, are the recurrent
layers' input per step.
"""
import numpy as np

# ONNX's gate order as indices into PyTorch's blocks
_GATE_ORDER = {"rnn": [0], "gru": [1, 0, 2], "lstm": [0, 3, 1, 2]}
_OPS = {"rnn": "RNN", "gru": "GRU", "lstm": "LSTM"}
DEFAULT_OPSET = 17


def _import_onnx():
    try:
        import onnx
        from onnx import helper, numpy_helper
    except ImportError as exc:        # pragma: no cover - depends on the environment
        raise ImportError("crnn.to_onnx needs the onnx package: pip install "
                          "'crnn[onnx]' (or pip install onnx).") from exc
    return onnx, helper, numpy_helper


def _reorder(w, cell, H):
    """Rows of a (G*H, ...) PyTorch weight or bias in ONNX's gate order."""
    return np.concatenate([w[g * H:(g + 1) * H] for g in _GATE_ORDER[cell]], axis=0)


class GraphBuilder:
    """The nodes and constants of a graph under construction: const() adds
    an initializer, node() a node named after its operator and position."""

    def __init__(self, helper, numpy_helper):
        self.helper, self.numpy_helper = helper, numpy_helper
        self.nodes, self.inits = [], []

    def const(self, name, arr):
        self.inits.append(self.numpy_helper.from_array(np.asarray(arr), name))
        return name

    def node(self, op, inputs, outputs, **attrs):
        self.nodes.append(self.helper.make_node(op, inputs, outputs,
                                                name=f"{op}_{len(self.nodes)}", **attrs))
        return outputs[0] if len(outputs) == 1 else outputs

    def model(self, onnx, name, inputs, outputs, opset):
        """The checked ModelProto of these nodes at `opset`."""
        from .._version import __version__
        helper = self.helper
        graph = helper.make_graph(self.nodes, name, inputs, outputs, self.inits)
        opsets = [helper.make_opsetid("", int(opset))]
        model = helper.make_model(graph, opset_imports=opsets, producer_name="crnn",
                                  producer_version=__version__,
                                  # the oldest IR that has the opset: older runtimes load it
                                  ir_version=helper.find_min_ir_version_for(opsets))
        onnx.checker.check_model(model)
        return model


def rnn_layer_params(weights, prefix, layer, ndir, cell, H, nonlinearity):
    """(W, R, B, attributes) of the ONNX RNN / GRU / LSTM node of one layer,
    from torch-named weights under `prefix` (e.g. "rnn."): the directions
    stacked, the gates in ONNX's order, GRU's linear_before_reset (torch's
    convention), the Elman cell's activation."""
    W, R, B = [], [], []
    for d in range(ndir):
        sfx = f"_l{layer}" + ("_reverse" if d else "")
        W.append(_reorder(weights[f"{prefix}weight_ih{sfx}"], cell, H))
        R.append(_reorder(weights[f"{prefix}weight_hh{sfx}"], cell, H))
        B.append(np.concatenate([_reorder(weights[f"{prefix}bias_ih{sfx}"], cell, H),
                                 _reorder(weights[f"{prefix}bias_hh{sfx}"], cell, H)]))
    attrs = {"hidden_size": H, "direction": "bidirectional" if ndir == 2 else "forward"}
    if cell == "gru":
        attrs["linear_before_reset"] = 1
    if cell == "rnn":
        attrs["activations"] = [nonlinearity.capitalize()] * ndir
    return np.stack(W), np.stack(R), np.stack(B), attrs


def conv_nodes(g, h, layers, weights):
    """The nodes of a convolutional front-end on NCHW images `h`: per layer
    a ``Conv`` (torch-named weights ``conv.{i}.weight`` (F, C, KH, KW) and
    ``.bias``), a ``Relu`` and, where the layer pools, a ``MaxPool`` whose
    stride is its kernel.  Returns the last feature map's name."""
    for i, ly in enumerate(layers):
        h = g.node("Conv", [h, g.const(f"conv{i}_W", weights[f"conv.{i}.weight"]),
                            g.const(f"conv{i}_B", weights[f"conv.{i}.bias"])], [f"conv{i}"],
                   kernel_shape=list(ly.kernel), strides=list(ly.stride),
                   pads=[ly.padding[0], ly.padding[1], ly.padding[0], ly.padding[1]])
        h = g.node("Relu", [h], [f"relu{i}"])
        if ly.pool is not None:
            h = g.node("MaxPool", [h], [f"pool{i}"], kernel_shape=list(ly.pool),
                       strides=list(ly.pool))
    return h


def _frame_features(g, layout, weights):
    """Frames X (batch, time, H, W, C) -> the front-end's features
    (batch, time, n_features), flattened in (H, W, C) order."""
    H, W, C = layout.image
    f = g.node("Reshape", ["X", g.const("frames_shape", np.array([-1, H, W, C], np.int64))],
               ["frames"])
    f = g.node("Transpose", [f], ["frames_nchw"], perm=[0, 3, 1, 2])
    f = conv_nodes(g, f, layout.convnet().layers, weights)
    f = g.node("Transpose", [f], ["features_nhwc"], perm=[0, 2, 3, 1])
    bt = g.node("Slice", [g.node("Shape", ["X"], ["x_shape"]),
                          g.const("bt_start", np.array([0], np.int64)),
                          g.const("bt_end", np.array([2], np.int64))], ["batch_time"])
    shape = g.node("Concat", [bt, g.const("n_features", np.array([layout.n_features],
                                                                  np.int64))],
                   ["features_shape"], axis=0)
    return g.node("Reshape", [f, shape], ["features"])


def _label_tensor(classes, numpy_helper):
    """classes_ as a constant tensor ArgMax indices can be looked up in."""
    classes = np.asarray(classes)
    if classes.dtype.kind in "US" or (
            classes.dtype.kind == "O" and all(isinstance(c, str) for c in classes)):
        return numpy_helper.from_array(np.array([str(c) for c in classes], dtype=object),
                                       "classes")
    if classes.dtype.kind == "O":
        raise TypeError("to_onnx exports class labels that are all strings or all numbers; "
                        f"classes_ holds {sorted({type(c).__name__ for c in classes})}.")
    if classes.dtype.kind in "iu":
        classes = classes.astype(np.int64)
    return numpy_helper.from_array(classes, "classes")


def to_onnx(estimator, *, sequence_lens=False, opset=DEFAULT_OPSET, name=None):
    """An ONNX model computing ``estimator``'s predictions.

    Parameters
    ----------
    estimator : fitted RNNRegressor, RNNClassifier or RNNSceneLabeler
    sequence_lens : bool, default=False
        Add the graph input ``sequence_lens`` (int32, shape (batch,)): the
        length of each sequence of a zero-padded batch.  Without it every
        sequence runs over the whole time axis.
    opset : int, default=17
        The ONNX opset (14 or later).
    name : str, optional
        The graph's name (default: the estimator's class name).

    Returns
    -------
    model : onnx.ModelProto
        Inputs ``X`` (float32, (batch, time, n_features), or frames
        (batch, time, height, width, channels) for a model with ``conv``)
        [and ``sequence_lens``]; outputs ``predictions`` (regressor) or ``label``
        and ``probabilities`` (classifier), per sequence or, for a model
        fitted with return_sequences, per step (steps past a sequence's
        length are padding).  The graph computes in float32 whatever the
        estimator's dtype (a float64 model's weights are rounded).
        An RNNSceneLabeler's graph takes images ``X`` (float32, (batch,
        height, width, channels)) and gives ``label`` (batch, height,
        width) and ``probabilities`` (batch, height, width, n_classes).

    Save it with ``onnx.save(model, "model.onnx")``; run it with
    ``onnxruntime.InferenceSession(model.SerializeToString())``.
    """
    from sklearn.utils.validation import check_is_fitted
    from .estimators import RNNClassifier, RNNRegressor
    # estimators of the layers above (RNNSceneLabeler) export their own graph
    own = getattr(type(estimator), "_onnx_graph", None)
    if not (isinstance(estimator, (RNNRegressor, RNNClassifier)) or own is not None):
        raise TypeError("to_onnx exports RNNRegressor, RNNClassifier and RNNSceneLabeler, "
                        f"not {type(estimator).__name__}.")
    check_is_fitted(estimator, "_theta")
    if int(opset) < 14:
        raise ValueError(f"opset must be 14 or later (the RNN operators' layout); got {opset}.")
    if own is not None:
        if sequence_lens:
            raise ValueError("sequence_lens is for sequence estimators; a scene labeller's "
                             "graph takes images.")
        return own(estimator, int(opset), name)
    onnx, helper, numpy_helper = _import_onnx()
    TP = onnx.TensorProto

    layout = estimator._layout
    H, ndir, cell = layout.hidden, layout.ndir, layout.cell
    seq = estimator._fitted_seq()
    frames = hasattr(layout, "convnet")
    weights = {k: np.asarray(v, dtype=np.float32) for k, v in
               (layout.torch_state_dict if frames else layout.views)(estimator._theta).items()}
    g = GraphBuilder(helper, numpy_helper)
    inits, const, node = g.inits, g.const, g.node

    lens = "sequence_lens" if sequence_lens else ""
    h = node("Transpose", [_frame_features(g, layout, weights) if frames else "X"], ["X_tnd"],
             perm=[1, 0, 2])
    last_h = None
    for layer in range(layout.num_layers):
        W, R, B, attrs = rnn_layer_params(weights, "rnn.", layer, ndir, cell, H,
                                          layout.nonlinearity)
        inputs = [h, const(f"W_l{layer}", W), const(f"R_l{layer}", R),
                  const(f"B_l{layer}", B)] + ([lens] if lens else [])
        y, last_h = node(_OPS[cell], inputs, [f"Y_l{layer}", f"Y_h_l{layer}"], **attrs)
        # (time, ndir, batch, H) -> (time, batch, ndir * H)
        y = node("Transpose", [y], [f"Y_l{layer}_t"], perm=[0, 2, 1, 3])
        h = node("Reshape", [y, const(f"shape_l{layer}", np.array([0, 0, -1], np.int64))],
                 [f"H_l{layer}"])

    w_out = const("head_weight_t", weights["head.weight"].T.copy())
    b_out = const("head_bias", weights["head.bias"])
    if seq:
        h = node("Transpose", [h], ["H_seq"], perm=[1, 0, 2])           # (batch, time, W)
    else:
        h = node("Transpose", [last_h], ["Y_h_t"], perm=[1, 0, 2])      # (batch, ndir, H)
        h = node("Reshape", [h, const("shape_last", np.array([0, -1], np.int64))], ["H_last"])
    logits = node("Add", [node("MatMul", [h, w_out], ["head_mm"]), b_out], ["logits"])

    batch_time = ["batch", "time"] if seq else ["batch"]
    outputs = []
    if isinstance(estimator, RNNClassifier):
        node("Softmax", [logits], ["probabilities"], axis=-1)
        idx = node("ArgMax", ["probabilities"], ["label_index"], axis=-1, keepdims=0)
        labels = _label_tensor(estimator.classes_, numpy_helper)
        inits.append(labels)
        node("Gather", ["classes", idx], ["label"], axis=0)
        outputs = [helper.make_tensor_value_info("label", labels.data_type, batch_time),
                   helper.make_tensor_value_info("probabilities", TP.FLOAT,
                                                 batch_time + [layout.n_outputs])]
    else:
        shape = batch_time + [layout.n_outputs]
        if estimator._y_ndim == len(batch_time):         # one output, squeezed
            node("Squeeze", [logits, const("squeeze_axes", np.array([-1], np.int64))],
                 ["predictions"])
            shape = batch_time
        else:
            node("Identity", [logits], ["predictions"])
        outputs = [helper.make_tensor_value_info("predictions", TP.FLOAT, shape)]

    inputs = [helper.make_tensor_value_info("X", TP.FLOAT, ["batch", "time"] + (
        list(layout.image) if frames else [layout.n_features]))]
    if sequence_lens:
        inputs.append(helper.make_tensor_value_info("sequence_lens", TP.INT32, ["batch"]))
    return g.model(onnx, name or type(estimator).__name__, inputs, outputs, opset)


# ---------------------------------------------------------------------------
# skl2onnx


def _skl2onnx_shape(operator):
    from skl2onnx.common.data_types import FloatTensorType, Int64TensorType, StringTensorType

    from .estimators import RNNClassifier
    est = operator.raw_operator
    lead = [operator.inputs[0].get_first_dimension()] + ([None] if est._fitted_seq() else [])
    if isinstance(est, RNNClassifier):
        labels = _label_tensor(est.classes_, _import_onnx()[2])
        string = labels.data_type == _import_onnx()[0].TensorProto.STRING
        operator.outputs[0].type = (StringTensorType if string else Int64TensorType)(lead)
        operator.outputs[1].type = FloatTensorType(lead + [len(est.classes_)])
    else:
        squeezed = est._y_ndim == len(lead)
        operator.outputs[0].type = FloatTensorType(lead + ([] if squeezed else [est.n_outputs_]))


def _skl2onnx_convert(scope, operator, container):
    """Copy to_onnx's graph into skl2onnx's, its tensors renamed into the scope."""
    from onnx import helper, numpy_helper

    from .estimators import RNNClassifier
    est = operator.raw_operator
    graph = to_onnx(est, opset=container.target_opset).graph
    ends = ["label", "probabilities"] if isinstance(est, RNNClassifier) else ["predictions"]
    names = {"X": operator.inputs[0].full_name}
    names.update((n, v.full_name) for n, v in zip(ends, operator.outputs))

    def rename(n):
        if n not in names:
            names[n] = scope.get_unique_variable_name(n)
        return names[n]

    for init in graph.initializer:
        container.initializers.append(numpy_helper.from_array(numpy_helper.to_array(init),
                                                              rename(init.name)))
    for node in graph.node:
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        attrs = {k: ([x.decode() for x in v] if isinstance(v, list) and v
                     and isinstance(v[0], bytes) else v.decode() if isinstance(v, bytes) else v)
                 for k, v in attrs.items()}
        container.add_node(node.op_type, [rename(i) for i in node.input],
                           [rename(o) for o in node.output],
                           name=scope.get_unique_operator_name(node.op_type), **attrs)


def register_skl2onnx():
    """Register converters for crnn's estimators with skl2onnx, so that
    ``skl2onnx.convert_sklearn`` / ``to_onnx`` export them (alone or as the
    last step of a pipeline whose earlier steps take 3D input).

    The graph is ``crnn.to_onnx``'s (without ``sequence_lens``); classifiers
    take skl2onnx's ``zipmap`` option (probabilities as a list of dicts by
    default, as for scikit-learn's classifiers; ``zipmap=False`` keeps the
    tensor, which a ``return_sequences`` classifier needs).  Give the input
    type as ``FloatTensorType([None, None, n_features])``.

    Returns
    -------
    None
    """
    try:
        from skl2onnx import update_registered_converter
    except ImportError as exc:        # pragma: no cover - depends on the environment
        raise ImportError("register_skl2onnx needs skl2onnx: pip install skl2onnx") from exc
    from .estimators import RNNClassifier, RNNRegressor
    update_registered_converter(RNNRegressor, "CrnnRNNRegressor", _skl2onnx_shape,
                                _skl2onnx_convert)
    update_registered_converter(RNNClassifier, "CrnnRNNClassifier", _skl2onnx_shape,
                                _skl2onnx_convert,
                                # skl2onnx's parser asks every classifier for nocl
                                # (labels as indices), which this converter does not do
                                options={"zipmap": [True, False, "columns"],
                                         "nocl": [False]})
