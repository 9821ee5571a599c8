"""Old import path (crnn._transcriber, before the modules moved into folders in
0.1.0): pickles made before then name these classes here.  New code imports
from crnn._speech.transcriber."""
from ._speech.transcriber import RNNTranscriber

__all__ = ["RNNTranscriber"]
