"""Weight averaging: Lookahead (EMA is tested with the loop, in test_train.py)."""

import torch
import torch.nn as nn

from tinycifar.averaging import Lookahead


def test_lookahead_pulls_back_and_hands_over_the_slow_weights():
    model = nn.Linear(2, 1, bias=False)
    look = Lookahead(model, total_steps=10, every=5)
    start = model.weight.detach().clone()
    with torch.no_grad():
        model.weight.add_(1.0)
    look.update(model, 4)  # step 5 of 10: decay = 0.95**5 * 0.5**3
    decay = 0.95**5 * 0.125
    expected = start * decay + (start + 1) * (1 - decay)
    assert torch.allclose(model.weight, expected) and torch.allclose(look.slow["weight"], expected)
    with torch.no_grad():
        model.weight.add_(5.0)
    look.update(model, 9)  # the last step: the model becomes the slow copy
    assert torch.allclose(model.weight, expected)
