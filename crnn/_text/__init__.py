"""Language models: RNNLanguageModel, and the tokenizers and vocabularies that
the translator shares."""
