"""Seeing inside recurrent networks: gradient flow, long-range memory, single hidden units.

* :mod:`.gradients`: ``||dL/dh_t||`` through time per cell and level (the lecture's argument
  for LSTM and GRU), singular values of ``W_hh``, gate saturation, a table and a plot.
* :mod:`.memory`: the copy task, the adding problem and sequential glyph pixels, generated;
  train a cell at a length, sweep lengths, the longest length solved.
* :mod:`.units`: a character model's units after each character, the ones that follow a
  property of the text (quotes, brackets, line position), and HTML pages that colour the text
  by a unit (Karpathy, Johnson & Fei-Fei 2015).
"""

from .gradients import (
    GradientFlow,
    Saturation,
    compare_cells,
    flow_table,
    gate_saturation,
    gradient_flow,
    hh_spectrum,
    plot_flows,
    set_forget_bias,
)
from .memory import (
    TASKS,
    MemoryModel,
    MemoryResult,
    longest_solved,
    make_batch,
    plot_sweep,
    sweep,
    train_memory,
)
from .units import (
    PROPERTIES,
    correlated_units,
    unit_activations,
    units_html,
    units_page,
)

__all__ = ["PROPERTIES", "TASKS", "GradientFlow", "MemoryModel", "MemoryResult", "Saturation",
           "compare_cells", "correlated_units", "flow_table", "gate_saturation",
           "gradient_flow", "hh_spectrum", "longest_solved", "make_batch", "plot_flows",
           "plot_sweep", "set_forget_bias", "sweep", "train_memory", "unit_activations",
           "units_html", "units_page"]
