"""The lecture's math: recurrent cells (one step) and the layer that runs them over time."""

from .cells import GRUCell, LayerNormLSTMCell, LSTMCell, LSTMState, RecurrentCell, RNNCell
from .modes import evaluating
from .recurrent import CELL_KINDS, IMPLS, Recurrent, make_cell

__all__ = ["CELL_KINDS", "IMPLS", "GRUCell", "LSTMCell", "LSTMState", "LayerNormLSTMCell",
           "RNNCell", "Recurrent", "RecurrentCell", "evaluating", "make_cell"]
