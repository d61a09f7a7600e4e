"""Models, one module per problem shape of the lecture, built from :mod:`rnnkit.nn`."""

from .language_model import LanguageModel, LanguageModelConfig, StepDecoder, detach_state

__all__ = ["LanguageModel", "LanguageModelConfig", "StepDecoder", "detach_state"]
