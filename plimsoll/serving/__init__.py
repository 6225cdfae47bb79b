"""The answer path: answerer, prompts, bundle assembly and the pyfunc model."""
