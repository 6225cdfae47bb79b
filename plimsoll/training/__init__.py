"""Training pairs and the fine-tuning of the encoder."""
