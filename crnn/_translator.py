"""Old import path (crnn._translator, before the modules moved into folders in
0.1.0): pickles made before then name these classes here.  New code imports
from crnn._translation.translator."""
from ._translation.translator import RNNTranslator

__all__ = ["RNNTranslator"]
