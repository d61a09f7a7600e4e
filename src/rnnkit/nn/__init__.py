"""The lecture's math: recurrent cells (one step) and the layer that runs them over time."""

from .cells import (
    CELL_KINDS,
    GRUCell,
    LayerNormLSTMCell,
    LSTMCell,
    LSTMState,
    RecurrentCell,
    RNNCell,
    check_cell,
    make_cell,
)
from .engines import ENGINES
from .modes import evaluating
from .recurrent import Recurrent

__all__ = ["CELL_KINDS", "ENGINES", "GRUCell", "LSTMCell", "LSTMState", "LayerNormLSTMCell",
           "RNNCell", "Recurrent", "RecurrentCell", "check_cell", "evaluating", "make_cell"]
