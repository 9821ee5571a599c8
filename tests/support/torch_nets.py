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
