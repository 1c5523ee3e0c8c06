"""A strategy plugin: experience replay in a few lines, run from outside the package.

    retain run --plugin examples/plugins/my_er.py --strategy my-er --replay-weight 0.5
"""

from dataclasses import dataclass

import torch.nn.functional as F

from retain.memory import ReservoirBuffer
from retain.strategies import Strategy, StrategyConfig, hp, register_strategy


@dataclass
class MyERConfig(StrategyConfig):
    buffer_size: int = hp(200, "samples kept", low=1)
    replay_weight: float = hp(1.0, "weight of the replayed samples' loss", low=0.0)


@register_strategy("my-er")
class MyER(Strategy):
    """Replay with a weighted loss: CE(current) + w * CE(replayed), reservoir insertion."""

    Config = MyERConfig
    family = "replay"
    cost = "a buffer of buffer_size samples; a second forward and backward pass on 32 of them per step"
    default_study = False  # a bare `retain run --plugin my_er.py` runs the built-in study, not this

    def __init__(self, model, config, **kwargs):
        super().__init__(model, config, **kwargs)
        self.buffer = ReservoirBuffer(config.buffer_size)

    def observe(self, x, y, task, *, plain=None):
        loss = F.cross_entropy(self.model(x), y)
        if len(self.buffer):
            past = self.buffer.sample(32)
            loss = loss + self.config.replay_weight * F.cross_entropy(self.model(past.x), past.y)
        self.step(loss)
        self.buffer.add(x if plain is None else plain, y, task)
        return {"loss": loss.detach()}

    def state_dict(self):  # what --checkpoint-dir saves after each task, so a resumed run keeps its buffer
        return super().state_dict() | {"buffer": self.buffer.state_dict()}

    def load_state_dict(self, state):
        super().load_state_dict(state)
        self.buffer.load_state_dict(state["buffer"])
