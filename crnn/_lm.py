"""Old import path (crnn._lm, before the modules moved into folders in
0.1.0): pickles made before then name these classes here.  New code imports
from crnn._text.language_model."""
from ._text.language_model import RNNLanguageModel

__all__ = ["RNNLanguageModel"]
