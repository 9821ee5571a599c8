"""Speech to text: RNNTranscriber over the CTC kernels."""
