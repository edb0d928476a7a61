import pytest
import torch

from flowlib import nets
from flowlib._validate import trusted
from flowlib.flowmap import KINDS, FlowMap, VelocityModel


def model64(seed=0, dim=2):
    torch.manual_seed(seed)
    return FlowMap(nets.MLP(dim, width=32, depth=2, n_times=2, gap=True)).double()


def test_identity_holds_by_construction():
    model = model64()
    x = torch.randn(10, 2, dtype=torch.float64)
    t = torch.rand(10, dtype=torch.float64)
    assert torch.equal(model(x, t, t), x)


def test_map_is_x_plus_gap_times_average_velocity():
    model = model64()
    x = torch.randn(10, 2, dtype=torch.float64)
    s, t = torch.rand(10, dtype=torch.float64), torch.rand(10, dtype=torch.float64)
    torch.testing.assert_close(model(x, s, t), x + (t - s)[:, None] * model.average_velocity(x, s, t))
    torch.testing.assert_close(model.average_velocity(x, s, t), model.net(x, s, t))


def test_velocity_is_the_diagonal_and_the_tangent():
    model = model64()
    x = torch.randn(10, 2, dtype=torch.float64)
    s = torch.full((10,), 0.3, dtype=torch.float64)
    assert torch.allclose(model.velocity(x, s), model.average_velocity(x, s, s))
    _, d_end = model.jvp(x, s, s, dt=1.0)  # d/dt X_{s,t} at t = s is v_{s,s}
    assert torch.allclose(d_end, model.velocity(x, s), atol=1e-12)


@pytest.mark.parametrize("output", ["map", "velocity"])
@pytest.mark.parametrize("tangent", ["dt", "ds", "dx", "all"])
def test_jvp_agrees_with_finite_differences_in_float64(output, tangent):
    model = model64(1)
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(64, 2, dtype=torch.float64, generator=gen)
    s = 0.5 * torch.rand(64, dtype=torch.float64, generator=gen)
    t = 0.5 + 0.5 * torch.rand(64, dtype=torch.float64, generator=gen)
    direction = torch.randn(64, 2, dtype=torch.float64, generator=gen)
    kwargs = {
        "dt": {"dt": 1.0},
        "ds": {"ds": 1.0},
        "dx": {"dx": direction},
        "all": {"dx": direction, "ds": 0.7, "dt": -0.3},
    }[tangent]
    value, exact = model.jvp(x, s, t, output=output, **kwargs)
    # the Fourier time features make third derivatives large, so a central difference needs a small step
    _, finite = model.jvp(x, s, t, output=output, scheme="fd", eps=1e-6, **kwargs)
    assert torch.allclose(exact, finite, rtol=1e-6, atol=1e-7)
    expected = model(x, s, t) if output == "map" else model.average_velocity(x, s, t)
    assert torch.allclose(value, expected)


def test_jvp_on_images_and_broadcast_points():
    torch.manual_seed(0)
    model = FlowMap(nets.MLP(4, width=16, depth=1, n_times=2)).double()
    images = torch.randn(3, 1, 2, 2, dtype=torch.float64)
    value, derivative = model.jvp(images, 0.2, 0.8, dx=torch.ones_like(images), dt=1.0)
    assert value.shape == derivative.shape == images.shape
    _, finite = model.jvp(images, 0.2, 0.8, dx=torch.ones_like(images), dt=1.0, scheme="fd", eps=1e-6)
    torch.testing.assert_close(derivative, finite, rtol=1e-6, atol=1e-7)
    one_point = torch.randn(1, 4, dtype=torch.float64).expand(5, 4)  # a broadcast view
    assert model.jvp(one_point, 0.1, 0.6, dt=1.0)[1].shape == (5, 4)


def test_gradients_flow_through_the_jvp():
    model = model64()
    x = torch.randn(8, 2, dtype=torch.float64)
    _, d_end = model.jvp(x, 0.2, 0.9, dt=1.0)
    d_end.square().sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


def test_forward_and_jvp_on_each_device(device):
    torch.manual_seed(0)
    model = FlowMap(nets.MLP(2, width=16, depth=1, n_times=2)).to(device)
    x = torch.randn(6, 2, device=device)
    s, t = torch.full((6,), 0.1, device=device), torch.full((6,), 0.7, device=device)
    out = model(x, s, t)
    assert out.device.type == device.type and out.shape == (6, 2)
    value, derivative = model.jvp(x, 0.1, 0.7, dt=1.0)
    assert value.device.type == derivative.device.type == device.type
    torch.testing.assert_close(value, out)
    assert torch.equal(model(x, 0.4, 0.4), x)


def test_kind_and_record():
    net = nets.MLP(2, width=8, depth=1, n_times=2)
    assert FlowMap(net).kind == "flow_map" and FlowMap(net).record is None
    assert FlowMap(net, kind="consistency").kind == "consistency"
    assert VelocityModel(nets.MLP(2, width=8, depth=1)).kind == "velocity"
    assert set(KINDS) == {"velocity", "flow_map", "consistency"}
    with pytest.raises(ValueError, match="unknown kind 'velocity'"):
        FlowMap(net, kind="velocity")


def test_velocity_model_wraps_a_one_time_network():
    torch.manual_seed(0)
    net = nets.MLP(2, width=16, depth=1)
    model = VelocityModel(net)
    x = torch.randn(5, 2)
    t = torch.rand(5)
    assert model.record is None
    torch.testing.assert_close(model(x, t), net(x, t))
    torch.testing.assert_close(model.velocity(x, 0.3), net(x, torch.full((5,), 0.3)))
    assert model(x, t).requires_grad  # a trainable module, not a detached function
    with pytest.raises(ValueError, match="t must lie"):
        model(x, 1.5)
    with pytest.raises(ValueError, match="NaN"):
        model(torch.full((5, 2), float("nan")), 0.5)
    with pytest.raises(TypeError, match=r"net must be a torch.nn.Module called as net\(x, t\)"):
        VelocityModel(lambda x, t: x)


def test_bad_inputs():
    model = model64()
    with pytest.raises(TypeError, match="net must be a torch.nn.Module"):
        FlowMap(lambda x, s, t: x)
    with pytest.raises(ValueError, match="t must lie"):
        model(torch.zeros(3, 2, dtype=torch.float64), 0.0, 1.5)
    with pytest.raises(ValueError, match="unknown scheme 'complex-step'"):
        model.jvp(torch.zeros(3, 2, dtype=torch.float64), 0.0, 1.0, scheme="complex-step")
    with pytest.raises(ValueError, match="unknown output"):
        model.jvp(torch.zeros(3, 2, dtype=torch.float64), 0.0, 1.0, output="both")
    with pytest.raises(ValueError, match=r"s must be a float or a tensor of shape \(3,\)"):
        model(torch.zeros(3, 2, dtype=torch.float64), torch.zeros(2), 1.0)
    with pytest.raises(TypeError, match="x must be a torch.Tensor"):
        model.velocity([[0.0, 0.0]], 0.5)


@pytest.mark.parametrize("kind", ["flow map", "velocity"])
def test_a_model_on_another_device_gets_its_inputs_there(kind):
    """Without a GPU: a model moved to the meta device must receive its inputs on the meta device (they are
    moved for it); the copy of the result back to the caller's CPU is where a meta run stops."""
    net = nets.MLP(2, width=8, depth=1, n_times=2 if kind == "flow map" else 1)
    model = (FlowMap(net) if kind == "flow map" else VelocityModel(net)).to("meta")
    seen = []
    net.register_forward_pre_hook(lambda module, args: seen.extend(a.device.type for a in args))
    x = torch.randn(4, 2)
    calls = [lambda: model.velocity(x, torch.full((4,), 0.5))]
    if kind == "flow map":
        calls += [lambda: model(x, 0.0, torch.ones(4)), lambda: model.average_velocity(x, 0.0, 1.0),
                  lambda: model.jvp(x, 0.0, 1.0, dt=1.0)]  # fmt: skip
    for call in calls:
        seen.clear()
        with trusted(), pytest.raises(NotImplementedError, match="meta"):  # no value scans of meta tensors
            call()
        assert seen and set(seen) == {"meta"}, f"the network saw inputs on {set(seen)}"


def test_results_come_back_on_the_callers_device_with_their_gradients():
    model = FlowMap(nets.MLP(2, width=8, depth=1, n_times=2))
    x = torch.randn(4, 2, requires_grad=True)
    out = model(x, 0.0, 1.0)
    assert out.device == x.device
    out.sum().backward()
    assert x.grad is not None and x.grad.shape == x.shape
