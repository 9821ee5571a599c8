"""Scores of generated text: corpus BLEU and chrF, computed as sacrebleu
computes them with its defaults (13a tokenization, exponential smoothing;
tested to give sacrebleu's numbers), without needing sacrebleu.

RNNTranslator.score uses sacrebleu itself when it is installed, else
``corpus_bleu``.
"""
from ._translation.bleu import corpus_bleu, corpus_chrf

__all__ = ["corpus_bleu", "corpus_chrf"]
