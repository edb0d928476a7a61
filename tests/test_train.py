import pytest
import torch

from flowlib import losses, nets, train


def make_problem():
    pool = torch.randn(4096, 2) * 0.3 + torch.tensor([1.0, -1.0])

    def loss_fn(model, gen):
        x1 = train.draw(pool, 128, gen)
        x0 = torch.randn(x1.shape, generator=gen)
        return losses.flow_matching(model, x0, x1, torch.rand(128, generator=gen))

    return loss_fn


def fresh_model(seed=0):
    torch.manual_seed(seed)
    return nets.MLP(2, width=32, depth=2)


def test_loss_decreases():
    result = train.train(fresh_model(), make_problem(), steps=300, lr=3e-3, progress=False)
    first, last = sum(result.losses[:30]) / 30, sum(result.losses[-30:]) / 30
    assert last < 0.7 * first
    assert result.steps == 300 and len(result.losses) == 300 and not result.from_cache


def test_resume_continues_exactly(tmp_path):
    loss_fn = make_problem()
    full = train.train(fresh_model(), loss_fn, steps=60, ema_decay=0.9, progress=False)

    checkpoint = tmp_path / "run.pt"
    partial_model = fresh_model()
    # simulate an interruption: a run whose loss_fn fails at step 40, after a checkpoint at step 30
    calls = {"n": 0}

    def failing(model, gen):
        calls["n"] += 1
        if calls["n"] > 40:
            raise KeyboardInterrupt
        return loss_fn(model, gen)

    with pytest.raises(KeyboardInterrupt):
        train.train(
            partial_model, failing, steps=60, ema_decay=0.9, checkpoint=checkpoint, checkpoint_every=30, progress=False
        )
    resumed = train.train(
        fresh_model(), loss_fn, steps=60, ema_decay=0.9, checkpoint=checkpoint, resume=True, progress=False
    )
    for a, b in zip(full.model.state_dict().values(), resumed.model.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    for a, b in zip(full.ema.state_dict().values(), resumed.ema.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    assert resumed.losses == full.losses


def test_cache_returns_the_same_weights_without_training():
    loss_fn = make_problem()
    first = train.train(fresh_model(), loss_fn, steps=50, cache_key={"data": "test"}, name="t", progress=False)
    assert first.cache_file is not None and first.cache_file.exists()

    def must_not_run(model, gen):
        raise AssertionError("trained again")

    second = train.train(fresh_model(), loss_fn, steps=50, cache_key={"data": "test"}, name="t", progress=False)
    assert second.from_cache and second.steps == 50
    for a, b in zip(first.model.state_dict().values(), second.model.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    # any change of configuration is a different entry
    third = train.train(fresh_model(), loss_fn, steps=51, cache_key={"data": "test"}, name="t", progress=False)
    assert not third.from_cache
    other = train.train(fresh_model(), loss_fn, steps=50, cache_key={"data": "other"}, name="t", progress=False)
    assert not other.from_cache
    # the loss function's source is part of the key: a different objective trains afresh
    with pytest.raises(AssertionError, match="trained again"):
        train.train(fresh_model(), must_not_run, steps=50, cache_key={"data": "test"}, name="t", progress=False)


def test_nan_loss_stops_with_the_step_named():
    loss_fn = make_problem()

    def exploding(model, gen):
        loss = loss_fn(model, gen)
        return loss * float("nan") if len(exploding.seen) >= 7 else (exploding.seen.append(1) or loss)

    exploding.seen = []
    with pytest.raises(FloatingPointError, match="at step 7 of 20"):
        train.train(fresh_model(), exploding, steps=20, progress=False)


def test_max_seconds_stops_early():
    result = train.train(fresh_model(), make_problem(), steps=10_000_000, max_seconds=0.5, progress=False)
    assert 0 < result.steps < 10_000_000 and len(result.losses) == result.steps


def test_bad_arguments():
    with pytest.raises(TypeError, match="nn.Module"):
        train.train(lambda x: x, make_problem(), steps=10)
    with pytest.raises(ValueError, match="steps must be >= 1"):
        train.train(fresh_model(), make_problem(), steps=0)
    with pytest.raises(ValueError, match="schedule"):
        train.train(fresh_model(), make_problem(), steps=5, schedule="step")
    with pytest.raises(TypeError, match="scalar tensor"):
        train.train(fresh_model(), lambda m, g: torch.zeros(3, requires_grad=True), steps=5, progress=False)


def test_mlp_interface():
    net = nets.MLP(3, width=16, depth=2, n_times=2)
    out = net(torch.randn(5, 3), 0.2, torch.rand(5))
    assert out.shape == (5, 3)
    with pytest.raises(TypeError, match="takes 2 time"):
        net(torch.randn(5, 3), 0.2)
    with pytest.raises(ValueError, match=r"shape \(batch, 3\)"):
        net(torch.randn(5, 2), 0.2, 0.3)
    with pytest.raises(ValueError, match="time 1 must lie"):
        net(torch.randn(5, 3), 2.0, 0.3)


def test_space_features_feed_sines_of_the_point_and_reject_bad_sizes():
    """With space_features=k the first layer sees x, 2k sines/cosines of B x and the time embeddings."""
    torch.manual_seed(0)
    plain = nets.MLP(2, width=16, depth=1, n_times=2)
    torch.manual_seed(0)
    featured = nets.MLP(2, width=16, depth=1, n_times=2, space_features=8, space_scale=2.0)
    assert featured.layers[0].in_features == plain.layers[0].in_features + 16
    assert featured.space_frequencies.shape == (8, 2)
    assert 1.0 < float(featured.space_frequencies.std()) < 3.0
    x = torch.randn(5, 2, dtype=torch.float64)
    assert featured.double()(x, 0.1, 0.7).shape == (5, 2)
    with pytest.raises(ValueError, match="space_features"):
        nets.MLP(2, space_features=-1)
    with pytest.raises(ValueError, match="space_scale"):
        nets.MLP(2, space_features=4, space_scale=0.0)


def test_as_velocity_wraps_a_network_for_float64_callers():
    net = nets.MLP(2, width=8, depth=1)
    velocity = nets.as_velocity(net)
    x = torch.randn(4, 2, dtype=torch.float64)
    out = velocity(x, torch.full((4,), 0.5, dtype=torch.float64))
    assert out.dtype == torch.float64 and out.shape == (4, 2) and not out.requires_grad
    assert torch.allclose(out, net(x.float(), 0.5).double().detach())
    assert torch.allclose(velocity(x, 0.5), out)
    with pytest.raises(TypeError, match="nn.Module"):
        nets.as_velocity(lambda x, t: x)


def test_fit_velocity_keeps_a_weight_average_on_request():
    data = torch.randn(512, 2) * 0.3
    plain = train.fit_velocity(data, 40, width=16, depth=2, batch_size=64, progress=False, cache=False)
    averaged = train.fit_velocity(
        data, 40, width=16, depth=2, batch_size=64, progress=False, cache=False, ema_decay=0.9
    )
    assert plain.ema is None and averaged.ema is not None
    torch.testing.assert_close(averaged.model.state_dict(), plain.model.state_dict())  # same run otherwise
    pairs = zip(averaged.ema.parameters(), averaged.model.parameters(), strict=True)
    assert all(not torch.equal(a, b) for a, b in pairs)  # the average lags behind the last iterate
    with pytest.raises(ValueError, match="ema_decay"):
        train.fit_velocity(data, 5, progress=False, cache=False, ema_decay=1.5)
