"""``rnnkit charlm hello``: the lecture's slide, trained for real.

Vocabulary ``[h, e, l, o]``, one-hot inputs, a vanilla RNN with three hidden units, trained on
"hello": at every step the input is one character and the target the next one (h->e, e->l,
l->l, l->o). The second "l" must be told from the first by the hidden state alone: that is what
the recurrence is for. The slide's table is printed per time step: the input, the hidden state
``h_t = tanh(W_hh h_{t-1} + W_xh x_t)``, the output scores ``y_t = W_hy h_t`` and the prediction.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..nn import Recurrent

VOCABULARY = ("h", "e", "l", "o")
WORD = "hello"


@dataclass
class HelloConfig:
    hidden_size: int = 3  # the slide's three hidden units
    learning_rate: float = 0.1  # Adam; the problem is tiny
    max_steps: int = 2000  # give up after this many updates
    seed: int = 0


@dataclass
class HelloResult:
    steps: int  # updates until every prediction was right (or max_steps)
    loss: float  # final cross-entropy, nats per character
    inputs: list[str]  # the characters fed in, "hell"
    targets: list[str]  # the characters to predict, "ello"
    hidden: Tensor  # (T, H) hidden state at each step
    scores: Tensor  # (T, V) output scores at each step
    predictions: list[str]
    solved: bool


class HelloRNN(nn.Module):
    """The slide's network: one-hot ``x_t`` -> ``h_t`` (vanilla RNN) -> ``y_t = W_hy h_t``."""

    def __init__(self, vocab_size: int, hidden_size: int) -> None:
        super().__init__()
        self.rnn = Recurrent("rnn_tanh", vocab_size, hidden_size)
        self.hy = nn.Linear(hidden_size, vocab_size)  # W_hy

    def forward(self, one_hot: Tensor) -> tuple[Tensor, Tensor]:
        hidden, _ = self.rnn(one_hot)  # (1, T, V) -> (1, T, H)
        return hidden, self.hy(hidden)  # (1, T, H), (1, T, V)


def train_hello(config: HelloConfig) -> HelloResult:
    """Train until the RNN predicts e, l, l, o from h, e, l, l (or ``max_steps`` run out)."""
    torch.manual_seed(config.seed)
    ids = torch.tensor([VOCABULARY.index(c) for c in WORD])
    inputs, targets = ids[:-1], ids[1:]  # "hell" -> "ello"
    one_hot = F.one_hot(inputs, len(VOCABULARY)).float().unsqueeze(0)  # (1, T, V)
    model = HelloRNN(len(VOCABULARY), config.hidden_size)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.learning_rate)
    steps = 0
    while steps < config.max_steps:
        steps += 1
        _, scores = model(one_hot)
        loss = F.cross_entropy(scores[0], targets)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if bool((scores[0].argmax(-1) == targets).all()) and loss.item() < 0.1:
            break
    with torch.no_grad():
        hidden, scores = model(one_hot)
        loss = F.cross_entropy(scores[0], targets).item()
    predictions = [VOCABULARY[i] for i in scores[0].argmax(-1).tolist()]
    return HelloResult(steps, loss, [VOCABULARY[i] for i in inputs.tolist()],
                       [VOCABULARY[i] for i in targets.tolist()], hidden[0], scores[0],
                       predictions, predictions == [VOCABULARY[i] for i in targets.tolist()])


def format_slide(result: HelloResult) -> str:
    """The slide's table: one row per time step."""
    def vector(values: Tensor) -> str:
        return "[" + ", ".join(f"{v:+.2f}" for v in values.tolist()) + "]"

    one_hot = {c: "[" + ", ".join("1" if c == d else "0" for d in VOCABULARY) + "]"
               for c in VOCABULARY}
    width = len(vector(result.hidden[0]))
    score_width = len(vector(result.scores[0]))
    lines = [f"vocabulary {list(VOCABULARY)}, training sequence {WORD!r}, a vanilla RNN with "
             f"{result.hidden.shape[1]} hidden units",
             f"trained for {result.steps} steps: loss {result.loss:.4f} nats/char",
             "",
             f"{'t':>2}  {'input x_t':<16} {'hidden h_t':<{width}}  "
             f"{'scores y_t (h, e, l, o)':<{score_width}}  predicted  target"]
    rows = zip(result.inputs, result.hidden, result.scores, result.predictions, result.targets,
               strict=True)
    for t, (char, hidden, scores, predicted, target) in enumerate(rows):
        mark = "ok" if predicted == target else "WRONG"
        lines.append(f"{t:>2}  {char!r} {one_hot[char]:<10} {vector(hidden):<{width}}  "
                     f"{vector(scores):<{score_width}}  {predicted!r:>9}  {target!r:>6}  {mark}")
    lines += ["",
              "h_t = tanh(W_hh h_{t-1} + W_xh x_t + b), y_t = W_hy h_t, the same weights at every",
              "step: the two 'l' inputs get different predictions because their hidden states "
              "differ."]
    return "\n".join(lines)
