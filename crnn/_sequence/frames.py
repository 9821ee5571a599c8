"""Frame sequences: RNNRegressor and RNNClassifier with a convolutional
front-end (the ``conv`` parameter).

X is then images per step, (n_samples, n_timesteps, H, W, C) (or without
C for one channel), or a list of (n_timesteps_i, H, W[, C]) arrays.  Each
frame goes through the front-end (crnn._nn.conv: 2-D convolutions, ReLU,
max pooling), its last feature map flattened in (H, W, C) order is the
network's input at that step, and the front-end trains with the network
(crnn._nn.conv.ConvTrainWorkspace: one joint step per batch).  The
network's layout is a ConvLayout (the front-end's weights first in the
parameter vector), and its engine a ConvEngine, which computes the
features of the frames it runs at the weights it is given.
"""
import numpy as np

from .._base.params import Satisfies
from .._nn.conv import ConvLayout, FrameData, image_array, layer_tuple, parse_layers


def _is_layer_list(v):
    return isinstance(v, (list, tuple))


CONV_CONSTRAINT = {"conv": [Satisfies(_is_layer_list, "a list of layers"), None]}


class FramesMixin:
    """What the conv parameter changes in a sequence estimator."""

    # a parameter added after model files existed: files without it keep
    # their behaviour (no front-end)
    _OPTIONAL_PARAMS = {"conv": None}

    def _check_param_rules(self):
        super()._check_param_rules()
        if self.conv is not None:
            parse_layers(self.conv)

    def _network_for(self, reset, layout):
        """(frames expected, the network they are for or None): `layout`
        when given (fit's X_val: the network being trained), the conv
        parameter for a new network, the fitted network otherwise
        (parameters take effect at the next fit)."""
        if layout is not None:
            return isinstance(layout, ConvLayout), layout
        lay = self.__dict__.get("_layout")
        if reset or lay is None:
            return self.conv is not None, None
        return isinstance(lay, ConvLayout), lay

    def _sample_ndims(self):
        """(the dimensions an array of samples may have, what they mean),
        for crnn.dask: frames for the fitted network, or for the conv
        parameter when not fitted."""
        if self._network_for(False, None)[0]:
            return (4, 5), ("4-D or 5-D (n_samples, n_timesteps, height, width[, channels]) "
                            "for a model with conv")
        return (2, 3), "2-D or 3-D (n_samples, n_timesteps[, n_features])"

    def _check_X(self, X, dtype, reset, n_features=None, name="X", layout=None):
        frames_expected, lay = self._network_for(reset, layout)
        if not frames_expected:
            return super()._check_X(X, dtype, reset, n_features, name)
        if isinstance(X, (list, tuple)) or (isinstance(X, np.ndarray) and X.dtype == object):
            if len(X) == 0:
                raise ValueError(f"{name} is an empty list; at least 1 sequence is required.")
            seqs = [self._frame_array(x, f"{name}[{i}]", 4, dtype) for i, x in enumerate(X)]
            shapes = {s.shape[1:] for s in seqs}
            if len(shapes) > 1:
                raise ValueError(f"{name} holds frames of different shapes {sorted(shapes)[:3]}"
                                 "; a front-end reads frames of one shape.")
            lens = np.array([len(s) for s in seqs], np.intp)
            frames = np.ascontiguousarray(np.concatenate(seqs), dtype)
            ragged = True
        else:
            A = self._frame_array(X, name, 5, dtype)
            n, T = A.shape[:2]
            frames = A.reshape((n * T,) + A.shape[2:])
            lens = np.full(n, T, np.intp)
            ragged = False
        if frames.shape[0] >= 2**31:
            raise ValueError(f"{name} is too large for the kernels (2**31 or more frames).")
        start = np.zeros(len(lens), np.intp)
        start[1:] = np.cumsum(lens)[:-1]
        if lay is not None and tuple(frames.shape[1:]) != tuple(lay.image):
            raise ValueError(f"{name}'s frames have shape {tuple(frames.shape[1:])}; "
                             f"{type(self).__name__} is "
                             f"{'fitting' if layout is not None else 'fitted'} on frames of "
                             f"{tuple(lay.image)}.")
        return FrameData(None, start, lens, ragged, frames)

    @staticmethod
    def _frame_array(X, name, ndim, dtype):
        """Frames as a C-contiguous array of `dtype` with the channel axis:
        ndim 5 (n, T, H, W, C) or 4 (T, H, W, C); one axis less is one
        channel."""
        what = ("(n_samples, n_timesteps, height, width[, channels]) or a list of "
                "(n_timesteps, height, width[, channels]) arrays") if ndim == 5 else \
            "(n_timesteps, height, width[, channels])"
        return image_array(X, name, ndim, dtype, f"a frame per step with conv, {what}")

    def _make_layout(self, n_features, n_outputs, data=None):
        if not isinstance(data, FrameData):
            return super()._make_layout(n_features, n_outputs)
        return self._conv_layout(data.image_shape, n_outputs)

    def _conv_layout(self, image, n_outputs):
        from .._base.estimator import _check_model_size
        from .._nn.conv import ConvNet
        if self.conv is None:
            raise ValueError(f"{type(self).__name__} is fitted with a convolutional front-end "
                             "but conv is None now: set conv back to continue training, or "
                             "fit with warm_start=False (and feature vectors) to train a "
                             "new network.")
        layers = parse_layers(self.conv)
        net = ConvNet(layers, image)
        layout = ConvLayout(
            self.cell, self.nonlinearity, int(self.num_layers), 2 if self.bidirectional else 1,
            int(self.hidden_size), int(net.n_features), int(n_outputs),
            conv=tuple(layer_tuple(ly) for ly in net.layers), image=tuple(image))
        _check_model_size(layout, self._dtype(),
                          f"conv={self.conv!r} on frames of {tuple(image)} with "
                          f"hidden_size={self.hidden_size}, num_layers={self.num_layers}")
        return layout

    def _state_dict_layout(self, sd, image_shape):
        """The network a state dict describes, and the dict with its
        front-end in the kernels' layout (conv models need image_shape)."""
        if self.conv is None:
            return super()._state_dict_layout(sd, image_shape)
        if image_shape is None:
            raise ValueError("with conv, load_state_dict needs the frames' shape: "
                             "load_state_dict(state_dict, image_shape=(height, width, "
                             "channels)).")
        if not (isinstance(image_shape, (tuple, list)) and len(image_shape) == 3 and all(
                isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= 1
                for v in image_shape)):
            raise ValueError(f"image_shape must be (height, width, channels), three positive "
                             f"ints; got {image_shape!r}.")
        image = tuple(int(v) for v in image_shape)
        w_out = np.asarray(sd.get("head.weight", np.zeros((0, 0))))
        if w_out.ndim != 2:
            raise ValueError("state_dict has no 2D 'head.weight' entry.")
        layout = self._conv_layout(image, w_out.shape[0])
        out = dict(sd)
        shapes = {name: shape for name, _, shape, _ in layout.tensors()}
        for i in range(len(layout.conv)):
            key = f"conv.{i}.weight"
            if key in out:
                w = np.asarray(out[key])
                kh, kw, c, f = shapes[key]
                if w.shape != (f, c, kh, kw):
                    raise ValueError(f"state_dict['{key}'] has shape {w.shape}; conv and "
                                     f"image_shape={image} need a Conv2d weight of shape "
                                     f"{(f, c, kh, kw)}.")
                out[key] = w.transpose(2, 3, 1, 0)
        return layout, out
