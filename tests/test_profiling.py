import pytest
import torch

from flowlib import nets
from flowlib.flowmap import FlowMap
from flowlib.profiling import saved_activation_bytes


def test_saved_activation_bytes_grow_with_the_jvp_and_vanish_without_gradients():
    torch.manual_seed(0)
    model = FlowMap(nets.MLP(2, width=64, depth=2, n_times=2))
    x, s, t = torch.randn(128, 2), torch.full((128,), 0.2), torch.full((128,), 0.7)
    forward = saved_activation_bytes(lambda: model(x, s, t).square().mean())
    jvp = saved_activation_bytes(lambda: model.jvp(x, s, t, dt=1.0)[1].square().mean())
    assert forward >= 128 * 64 * 4  # at least one hidden activation in float32
    assert jvp > forward
    with torch.no_grad():
        assert saved_activation_bytes(lambda: model(x, s, t).sum()) == 0
    with pytest.raises(TypeError, match=r"compute must be a callable compute\(\) -> loss"):
        saved_activation_bytes("loss")


def test_saved_activation_bytes_scale_with_the_batch():
    torch.manual_seed(0)
    layer = torch.nn.Linear(32, 32)
    small = saved_activation_bytes(lambda: torch.tanh(layer(torch.randn(100, 32))).sum())
    large = saved_activation_bytes(lambda: torch.tanh(layer(torch.randn(400, 32))).sum())
    assert small >= 100 * 32 * 4  # at least the tanh output, 4 bytes a number
    assert 3.5 * small < large <= 4 * small  # activations grow with the batch; the weights do not


def test_backward_seconds_times_a_pass_and_leaves_no_gradients():
    from flowlib import profiling

    layer = torch.nn.Linear(64, 64)
    x = torch.randn(256, 64)
    short = profiling.backward_seconds(lambda: layer(x).square().sum(), layer)
    long = profiling.backward_seconds(lambda: _chain(layer, x, 50).square().sum(), layer)
    assert 0 < short < long and all(p.grad is None for p in layer.parameters())
    with pytest.raises(TypeError, match="module must be a torch.nn.Module"):
        profiling.backward_seconds(lambda: layer(x).sum(), "layer")


def _chain(layer, x, times):
    for _ in range(times):
        x = torch.tanh(layer(x))
    return x
