"""Models, one module per problem shape of the lecture, built from :mod:`rnnkit.nn`: each
``forward(..., targets=None) -> (logits, loss)``, each built from its config dataclass."""

from .captioner import Captioner, CaptionerConfig
from .classifier import ClassifierConfig, SequenceClassifier
from .frames import FrameModelConfig, FrameSequenceModel
from .image_captioner import ImageCaptioner, ImageCaptionerConfig
from .language_model import LanguageModel, LanguageModelConfig, StepDecoder, detach_state
from .seq2seq import Seq2Seq, Seq2SeqConfig

__all__ = ["Captioner", "CaptionerConfig", "ClassifierConfig", "FrameModelConfig",
           "FrameSequenceModel", "ImageCaptioner", "ImageCaptionerConfig", "LanguageModel",
           "LanguageModelConfig", "Seq2Seq", "Seq2SeqConfig", "SequenceClassifier",
           "StepDecoder", "detach_state"]
