"""Glue per task: a config dataclass, data + model, and the train/eval/predict steps."""
