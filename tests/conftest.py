"""The suite's shared set-up.

The tests mirror the package: tests/<folder>/ holds the tests of
crnn/_<folder>/ (base, nn, sequence, forecasting, text, translation,
speech, io, datasets), tests/kernels/ those of the compiled kernels (src/),
tests/scaling/ Dask and Ray, tests/cli/ the command line.  tests/support/
holds what several of them share: the independent numpy references
(reference.py, seq2seq_reference.py, ctc_reference.py) and helpers; it is
put on sys.path here, so a test imports them by name.
"""
import os
import sys

SUPPORT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "support")
if SUPPORT not in sys.path:
    sys.path.insert(0, SUPPORT)
