import math

import pytest
import torch

from flowlib import nets


def test_time_embedding_is_the_time_and_its_fourier_features():
    embedding = nets.TimeEmbedding(3)
    t = torch.tensor([0.0, 0.25, 0.7])
    out = embedding(t)
    assert out.shape == (3, embedding.out_features) == (3, 7)
    assert torch.equal(out[:, 0], t)
    torch.testing.assert_close(out[:, 1:4], torch.sin(2 * math.pi * t[:, None] * torch.tensor([1.0, 2.0, 4.0])))
    torch.testing.assert_close(out[:, 4:], torch.cos(2 * math.pi * t[:, None] * torch.tensor([1.0, 2.0, 4.0])))
    assert embedding(t.double()).dtype == torch.float64
    with pytest.raises(ValueError, match="n_frequencies must be >= 1"):
        nets.TimeEmbedding(0)


def test_mlp_interface():
    net = nets.MLP(3, width=16, depth=2, n_times=2)
    out = net(torch.randn(5, 3), 0.2, torch.rand(5))
    assert out.shape == (5, 3)
    with pytest.raises(TypeError, match="takes 2 time"):
        net(torch.randn(5, 3), 0.2)
    with pytest.raises(ValueError, match=r"shape \(batch, 3\)"):
        net(torch.randn(5, 2), 0.2, 0.3)
    with pytest.raises(ValueError, match=r"time 2 must be a float or a tensor of shape \(5,\)"):
        net(torch.randn(5, 3), 0.2, torch.rand(4))


def test_mlp_checks_shapes_only_not_the_range_of_times():
    """FlowMap and VelocityModel range-check times once per call; the network itself does not."""
    torch.manual_seed(0)
    net = nets.MLP(3, width=16, depth=1, n_times=2)
    x = torch.randn(5, 3)
    out = net(x, 2.0, -0.3)
    assert out.shape == (5, 3) and torch.isfinite(out).all()
    assert not torch.equal(out, net(x, 0.2, 0.3))  # the times do reach the network


def test_mlp_counts_inputs_and_layers():
    net = nets.MLP(2, width=24, depth=3, n_times=2, n_frequencies=4, activation="tanh", gap=True)
    embedding = 1 + 2 * 4
    assert net.layers[0].in_features == 2 + 3 * embedding  # x, s, t and the gap t - s
    linears = [m for m in net.layers if isinstance(m, torch.nn.Linear)]
    assert len(linears) == 4 and linears[-1].out_features == 2
    assert all(isinstance(m, torch.nn.Tanh) for m in net.layers if not isinstance(m, torch.nn.Linear))
    with pytest.raises(ValueError, match="gap=True needs n_times=2"):
        nets.MLP(2, n_times=1, gap=True)
    with pytest.raises(ValueError, match="unknown activation"):
        nets.MLP(2, activation="swish")
    with pytest.raises(TypeError, match="width must be an int"):
        nets.MLP(2, width=16.0)


def test_the_gap_feature_is_t_minus_s():
    torch.manual_seed(0)
    net = nets.MLP(2, width=8, depth=1, n_times=2, gap=True)
    seen = []
    net.layers[0].register_forward_hook(lambda module, inputs, output: seen.append(inputs[0]))
    net(torch.zeros(3, 2), torch.tensor([0.1, 0.2, 0.3]), torch.tensor([0.5, 0.9, 0.3]))
    width = net.embedding.out_features
    gap_column = seen[0][:, 2 + 2 * width]
    torch.testing.assert_close(gap_column, torch.tensor([0.4, 0.7, 0.0]))


def test_mlp_takes_images_and_returns_their_shape():
    torch.manual_seed(0)
    net = nets.MLP(64, width=32, depth=2, n_times=2)
    images = torch.randn(6, 1, 8, 8)
    s, t = torch.rand(6), torch.rand(6)
    out = net(images, s, t)
    assert out.shape == (6, 1, 8, 8)
    torch.testing.assert_close(out.reshape(6, 64), net(images.reshape(6, 64), s, t))
    with pytest.raises(ValueError, match="C·H·W = 64"):
        net(torch.randn(6, 1, 7, 7), s, t)


def test_detached_casts_to_the_network_and_back_without_gradients():
    torch.manual_seed(0)
    net = nets.MLP(2, width=8, depth=1)
    velocity = nets.detached(net)
    x = torch.randn(4, 2, dtype=torch.float64)
    out = velocity(x, torch.full((4,), 0.5, dtype=torch.float64))
    assert out.dtype == torch.float64 and out.shape == (4, 2) and not out.requires_grad
    torch.testing.assert_close(out, net(x.float(), 0.5).double().detach())
    torch.testing.assert_close(velocity(x, 0.5), out)
    assert not hasattr(velocity, "module")


def test_detached_calls_the_given_method():
    class Twice(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.scale = torch.nn.Parameter(torch.tensor(2.0))

        def forward(self, x, t):
            return self.scale * x

        def negative(self, x, t):
            return -self.scale * x

    module = Twice()
    x = torch.ones(2, 1, dtype=torch.float64)
    assert nets.detached(module)(x, 0.0).tolist() == [[2.0], [2.0]]
    out = nets.detached(module, module.negative)(x, 0.0)
    assert out.tolist() == [[-2.0], [-2.0]] and out.dtype == torch.float64


def test_placement_reads_the_parameters():
    net = nets.MLP(2, width=8, depth=1).double()
    assert nets.placement(net) == (torch.float64, torch.device("cpu"))
    assert nets.placement(torch.nn.ReLU()) == (torch.float32, torch.device("cpu"))
    with pytest.raises(TypeError, match="nn.Module"):
        nets.placement(lambda x: x)


def test_network_runs_on_each_device(device):
    torch.manual_seed(0)
    net = nets.MLP(2, width=8, depth=1, n_times=2).to(device)
    dtype, where = nets.placement(net)
    assert dtype == torch.float32 and where.type == device.type
    x = torch.randn(5, 2, dtype=torch.float64)  # on the CPU: detached moves it there and back
    out = nets.detached(net)(x, 0.1, torch.full((5,), 0.6))
    assert out.device == x.device and out.dtype == torch.float64
