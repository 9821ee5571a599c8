"""RNNSceneLabeler to ONNX (crnn.to_onnx dispatches here).

The graph, for images X of shape (batch, height, width, channels), float32:

- the standardisation (Sub, Div), then a Transpose to NCHW;
- each layer a ``Conv`` (+ ``Relu``, + ``MaxPool`` where it pools);
- the feature map's rows as sequences (time = its width, batch = images x
  rows) through a bidirectional ``RNN`` / ``GRU`` / ``LSTM`` and the
  projection (MatMul, Add); the columns of the result (time = its height)
  through the second sweep and the classifier;
- ``Softmax``, ``Resize`` (linear, half_pixel: torch's
  ``interpolate(mode="bilinear", align_corners=False)``, and crnn's
  upsampling where an image is one pixel high or wide) to the image's
  size, outputs ``probabilities`` (batch, height, width, n_classes) and
  ``label`` (batch, height, width).

Batch, height and width are dynamic.  Shape arithmetic (the grid's height
and width) is read from the feature map with Shape / Gather / Concat.
"""
import numpy as np

from .._sequence.onnx import (_OPS, GraphBuilder, _import_onnx, _label_tensor, conv_nodes,
                              rnn_layer_params)


def scene_to_onnx(estimator, opset, name):
    onnx, helper, numpy_helper = _import_onnx()
    TP = onnx.TensorProto
    layout, theta, mean, scale, classes = estimator._fitted()
    weights = {k: np.asarray(v, np.float32) for k, v in layout.torch_state_dict(theta).items()}
    g = GraphBuilder(helper, numpy_helper)
    inits, const, node = g.inits, g.const, g.node

    x = node("Sub", ["X", const("input_mean", mean.astype(np.float32))],
             ["X_centred"])
    x = node("Div", [x, const("input_scale", scale.astype(np.float32))],
             ["X_std"])
    h = node("Transpose", [x], ["X_nchw"], perm=[0, 3, 1, 2])
    h = conv_nodes(g, h, layout.layers, weights)
    # the grid's sizes: (n, c, gh, gw) of the feature map
    shape = node("Shape", [h], ["feat_shape"])
    n, gh, gw = (node("Gather", [shape, const(f"idx_{k}", np.array([j], np.int64))],
                      [f"dim_{k}"], axis=0) for k, j in (("n", 0), ("gh", 2), ("gw", 3)))

    def sweep(prefix, seq):
        """seq (time, batch, features) -> (time, batch, the head's outputs)."""
        W, R, B, attrs = rnn_layer_params(weights, f"{prefix}.rnn.", 0, 2, layout.cell,
                                          layout.hidden, layout.nonlinearity)
        y = node(_OPS[layout.cell], [seq, const(f"{prefix}_W", W), const(f"{prefix}_R", R),
                                     const(f"{prefix}_B", B)], [f"{prefix}_Y"], **attrs)
        y = node("Transpose", [y], [f"{prefix}_Yt"], perm=[0, 2, 1, 3])
        y = node("Reshape", [y, const(f"{prefix}_shape", np.array([0, 0, -1], np.int64))],
                 [f"{prefix}_H"])
        y = node("MatMul", [y, const(f"{prefix}_head_Wt",
                                     weights[f"{prefix}.head.weight"].T.copy())],
                 [f"{prefix}_mm"])
        return node("Add", [y, const(f"{prefix}_head_b", weights[f"{prefix}.head.bias"])],
                    [f"{prefix}_out"])

    c = layout.conv[-1][0]
    P, K = layout.projection, layout.n_classes
    # rows: (n, c, gh, gw) -> (gw, n, gh, c) -> (gw, n * gh, c)
    rows = node("Transpose", [h], ["rows_t"], perm=[3, 0, 2, 1])
    rows = node("Reshape", [rows, const("rows_shape", np.array([0, -1, c], np.int64))],
                ["rows"])
    r = sweep("row", rows)                                     # (gw, n * gh, P)
    # columns: (gw, n, gh, P) -> (gh, n, gw, P) -> (gh, n * gw, P)
    r4 = node("Concat", [gw, n, gh, const("P", np.array([P], np.int64))], ["r4_shape"],
              axis=0)
    r = node("Reshape", [r, r4], ["rows_4d"])
    cols = node("Transpose", [r], ["cols_t"], perm=[2, 1, 0, 3])
    cols = node("Reshape", [cols, const("cols_shape", np.array([0, -1, P], np.int64))],
                ["cols"])
    z = sweep("col", cols)                                     # (gh, n * gw, K)
    z4 = node("Concat", [gh, n, gw, const("K", np.array([K], np.int64))], ["z4_shape"],
              axis=0)
    z = node("Reshape", [z, z4], ["logits_grid"])                 # (gh, n, gw, K)
    p = node("Softmax", [z], ["proba_grid"], axis=-1)
    p = node("Transpose", [p], ["proba_nchw"], perm=[1, 3, 0, 2])   # (n, K, gh, gw)
    xs = node("Shape", ["X"], ["x_shape"])
    hw = node("Slice", [xs, const("s1", np.array([1], np.int64)),
                        const("s3", np.array([3], np.int64))], ["x_hw"])
    sizes = node("Concat", [n, const("K_size", np.array([K], np.int64)), hw], ["sizes"],
                 axis=0)
    p = node("Resize", [p, "", "", sizes], ["proba_up"], mode="linear",
             coordinate_transformation_mode="half_pixel")
    node("Transpose", [p], ["probabilities"], perm=[0, 2, 3, 1])
    idx = node("ArgMax", ["probabilities"], ["label_index"], axis=-1, keepdims=0)
    labels = _label_tensor(classes, numpy_helper)
    inits.append(labels)
    node("Gather", ["classes", idx], ["label"], axis=0)

    inputs = [helper.make_tensor_value_info("X", TP.FLOAT,
                                            ["batch", "height", "width", layout.channels])]
    outputs = [helper.make_tensor_value_info("label", labels.data_type,
                                             ["batch", "height", "width"]),
               helper.make_tensor_value_info("probabilities", TP.FLOAT,
                                             ["batch", "height", "width", K])]
    return g.model(onnx, name or type(estimator).__name__, inputs, outputs, opset)
