"""PyTorch twins of crnn's networks, for the tests that compare with torch
(import only where torch is installed)."""
import torch
from torch import nn


class TorchNet(nn.Module):
    """nn.RNN / nn.GRU / nn.LSTM + nn.Linear, read the way crnn reads it."""

    def __init__(self, D, H, L, O, nonlinearity="tanh", bidirectional=False, seq=False,
                 cell="rnn"):
        super().__init__()
        if cell == "rnn":
            self.rnn = nn.RNN(D, H, L, nonlinearity=nonlinearity, batch_first=True,
                              bidirectional=bidirectional)
        else:
            self.rnn = {"gru": nn.GRU, "lstm": nn.LSTM}[cell](
                D, H, L, batch_first=True, bidirectional=bidirectional)
        self.head = nn.Linear((2 if bidirectional else 1) * H, O)
        self.seq = seq
        self.bidirectional = bidirectional

    def forward(self, x):
        out, h_n = self.rnn(x)
        if isinstance(h_n, tuple):          # LSTM: (h_n, c_n)
            h_n = h_n[0]
        if self.seq:
            return self.head(out)
        last = torch.cat([h_n[-2], h_n[-1]], 1) if self.bidirectional else h_n[-1]
        return self.head(last)


class SceneTwin(nn.Module):
    """crnn's SceneNet in torch: Conv2d (+ ReLU, max_pool2d where a layer
    pools) on channels-last images, then a bidirectional sweep over the
    feature map's rows with a projection head ("row") and one over the
    columns of its outputs with the classifier ("col"); forward gives the
    logits on the grid, (n, h, w, n_classes)."""

    def __init__(self, layers, channels, cell, hidden_row, hidden_col, projection, n_classes,
                 nonlinearity="tanh"):
        super().__init__()
        rnn = {"gru": nn.GRU, "lstm": nn.LSTM, "rnn": nn.RNN}[cell]
        kw = {"nonlinearity": nonlinearity} if cell == "rnn" else {}

        class Sweep(nn.Module):
            def __init__(self, D, H, O):
                super().__init__()
                self.rnn = rnn(D, H, batch_first=True, bidirectional=True, **kw)
                self.head = nn.Linear(2 * H, O)

            def forward(self, x):
                return self.head(self.rnn(x)[0])

        self.layers = list(layers)
        c = [channels] + [ly.filters for ly in self.layers]
        self.conv = nn.ModuleList(nn.Conv2d(c[i], ly.filters, ly.kernel, ly.stride, ly.padding)
                                  for i, ly in enumerate(self.layers))
        self.row = Sweep(c[-1], hidden_row, projection)
        self.col = Sweep(projection, hidden_col, n_classes)

    def forward(self, images):
        h = images.permute(0, 3, 1, 2)
        for ly, conv in zip(self.layers, self.conv):
            h = torch.relu(conv(h))
            if ly.pool is not None:
                h = nn.functional.max_pool2d(h, ly.pool)
        n, _, gh, gw = h.shape
        rows = self.row(h.permute(0, 2, 3, 1).reshape(n * gh, gw, -1))
        cols = rows.reshape(n, gh, gw, -1).permute(0, 2, 1, 3).reshape(n * gw, gh, -1)
        return self.col(cols).reshape(n, gw, gh, -1).permute(0, 2, 1, 3)
