"""Old import path (crnn._layout, before the modules moved into folders in
0.1.0): pickles made before then name these classes here.  New code imports
from crnn._nn.layout."""
from ._nn.layout import Layout

__all__ = ["Layout"]
