"""Translation: RNNTranslator over the attention encoder-decoder kernels, beam
search and BLEU."""
