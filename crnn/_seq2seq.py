"""Old import path (crnn._seq2seq, before the modules moved into folders in
0.1.0): pickles made before then name these classes here.  New code imports
from crnn._nn.seq2seq."""
from ._nn.seq2seq import Seq2SeqLayout

__all__ = ["Seq2SeqLayout"]
