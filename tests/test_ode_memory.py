"""The experimental ode-memory strategy: its blocks are residual, gradients reach them, and with
both blocks off it is exactly ER."""

import pytest
import torch

from retain.config.run import RunConfig
from retain.models.mlp import mlp
from retain.models.ode_memory import MemoryRead, ODEBlock, ODEMemoryNet
from retain.training.loop import run_experiment

pytest.importorskip("torchdiffeq")


def test_ode_block_with_zero_dynamics_is_identity():
    block = ODEBlock(8, 16, steps=3)
    h = torch.randn(5, 8)
    assert torch.allclose(block(h), h)  # f starts at zero
    torch.nn.init.normal_(block.func.net[-1].weight)
    assert not torch.allclose(block(h), h)


def test_memory_read_with_empty_memory_leaves_features_unchanged():
    read = MemoryRead(8, 4)
    h = torch.randn(5, 8)
    assert torch.equal(read(h), h)
    read.set_memory(torch.randn(3, 8), torch.tensor([0, 1, 2]))
    assert not torch.allclose(read(h), h)


def test_gradients_reach_the_ode_dynamics_and_the_attention():
    net = ODEMemoryNet(mlp((16,), 4, hidden=(8,)), 4, use_ode=True, use_memory=True, ode_hidden=8, ode_steps=2,
                       adjoint=False)
    torch.nn.init.normal_(net.ode.func.net[-1].weight, std=0.1)
    net.memory_source = lambda training: (torch.randn(6, 16), torch.tensor([0, 1, 2, 3, 0, 1]))
    net(torch.randn(5, 16)).square().sum().backward()
    for module in (net.ode.func.net[0], net.memory.query, net.memory.key, net.memory.value, net.memory.out):
        assert module.weight.grad is not None and module.weight.grad.abs().sum() > 0


def test_both_ablations_off_is_exactly_er():
    common = dict(benchmark="synthetic", params={"buffer_size": 16, "use_ode": False, "use_memory": False})
    hybrid = run_experiment(RunConfig(strategy="ode-memory", **common))
    er = run_experiment(RunConfig(strategy="er", **common))
    assert hybrid.acc_matrix == er.acc_matrix
