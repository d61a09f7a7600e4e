"""The character-level language model from Python: ``rnnkit.charlm.train(...)``, ``.load(...)``.

    from rnnkit import charlm
    model = charlm.train("runs/shakespeare", text="input.txt", time_budget="75s")
    model = charlm.load("runs/shakespeare")              # later, from the run folder
    print("".join(model.sample("ROMEO:", 200, temperature=0.8)))
    print(model.evaluate("test.txt"))                    # loss, bpc, perplexity

The same as ``rnnkit charlm train | sample | eval`` on the command line.
"""

from .tasks.charlm import CharLMConfig, TrainedModel, train

load = TrainedModel.load

__all__ = ["CharLMConfig", "TrainedModel", "load", "train"]
