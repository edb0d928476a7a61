import math

import pytest
import torch

from flowlib import losses, nets, train


def make_problem():
    pool = torch.randn(4096, 2) * 0.3 + torch.tensor([1.0, -1.0])

    def loss_fn(model, gen, progress):
        x1 = train.draw(pool, 128, gen)
        x0 = torch.randn(x1.shape, generator=gen)
        return losses.flow_matching(model, x0, x1, torch.rand(128, generator=gen))

    return loss_fn


def fresh_model(seed=0):
    torch.manual_seed(seed)
    return nets.MLP(2, width=32, depth=2)


def same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    return all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values(), strict=True))


def test_loss_decreases():
    result = train.train(fresh_model(), make_problem(), 300, lr=3e-3, progress=False)
    first, last = sum(result.losses[:30]) / 30, sum(result.losses[-30:]) / 30
    assert last < 0.7 * first
    assert result.steps == 300 and len(result.losses) == 300 and not result.from_cache
    assert result.best is result.model and result.ema is None
    assert not result.model.training  # returned in eval mode
    assert result.config["train_steps"] == 300 and result.config["warmup"] == train.default_warmup(300)
    assert "trained: 300 steps" in str(result)


def test_loss_fn_sees_the_share_of_training_done_and_a_seeded_generator():
    seen = []
    loss_fn = make_problem()

    def recording(model, generator, progress):
        seen.append((progress, generator.initial_seed(), generator.device.type))
        return loss_fn(model, generator, progress)

    train.train(fresh_model(), recording, 4, seed=7, progress=False)
    assert [p for p, _, _ in seen] == [0.0, 0.25, 0.5, 0.75]
    assert {(seed, device) for _, seed, device in seen} == {(7, "cpu")}


def test_runs_are_deterministic_given_the_seed():
    a = train.train(fresh_model(), make_problem(), 20, seed=3, progress=False)
    b = train.train(fresh_model(), make_problem(), 20, seed=3, progress=False)
    c = train.train(fresh_model(), make_problem(), 20, seed=4, progress=False)
    assert a.losses == b.losses and same_weights(a.model, b.model)
    assert a.losses != c.losses


def test_resume_continues_exactly(tmp_path):
    loss_fn = make_problem()
    full = train.train(fresh_model(), loss_fn, 60, ema_decay=0.9, progress=False)

    checkpoint = tmp_path / "run.pt"
    partial_model = fresh_model()
    # simulate an interruption: a run whose loss_fn fails at step 40, after a checkpoint at step 30
    calls = {"n": 0}

    def failing(model, gen, progress):
        calls["n"] += 1
        if calls["n"] > 40:
            raise KeyboardInterrupt
        return loss_fn(model, gen, progress)

    with pytest.raises(KeyboardInterrupt):
        train.train(
            partial_model, failing, 60, ema_decay=0.9, checkpoint=checkpoint, checkpoint_every=30, progress=False
        )
    assert checkpoint.exists()
    resumed = train.train(fresh_model(), loss_fn, 60, ema_decay=0.9, checkpoint=checkpoint, resume=True, progress=False)
    assert same_weights(full.model, resumed.model)
    assert same_weights(full.ema, resumed.ema)
    assert resumed.losses == full.losses and resumed.steps == 60


def test_cache_returns_the_same_weights_without_training():
    loss_fn = make_problem()
    first = train.train(fresh_model(), loss_fn, 50, cache_key={"data": "test"}, name="t", progress=False)
    assert first.cache_file is not None and first.cache_file.exists() and first.cache_file.name.startswith("t-")

    def must_not_run(model, gen, progress):
        raise AssertionError("trained again")

    # the key is the caller's cache_key, the loop's settings, the model and its initial weights: not the
    # loss function's source, so a loss with the same key is not run again
    second = train.train(fresh_model(), must_not_run, 50, cache_key={"data": "test"}, name="t", progress=False)
    assert second.from_cache and second.steps == 50 and second.cache_file == first.cache_file
    assert second.losses == pytest.approx(first.losses) and second.seconds == pytest.approx(first.seconds)
    assert same_weights(first.model, second.model)
    assert "loaded from cache" in str(second)
    # any change of configuration is a different entry
    for changed in (
        dict(train_steps=51),
        dict(cache_key={"data": "other"}),
        dict(lr=2e-3),
        dict(model=fresh_model(seed=1)),  # other initial weights
        dict(model=nets.MLP(2, width=16, depth=2)),  # another structure
    ):
        settings = {"model": fresh_model(), "train_steps": 50, "cache_key": {"data": "test"}, "lr": 1e-3, **changed}
        model, steps = settings.pop("model"), settings.pop("train_steps")
        other = train.train(model, loss_fn, steps, name="t", progress=False, **settings)
        assert not other.from_cache, changed
    # no key, no cache
    uncached = train.train(fresh_model(), loss_fn, 5, progress=False)
    assert uncached.cache_file is None


def test_bumping_the_cache_format_retrains(monkeypatch):
    loss_fn = make_problem()
    first = train.train(fresh_model(), loss_fn, 5, cache_key={"data": "x"}, progress=False)
    monkeypatch.setattr(train, "CACHE_FORMAT", train.CACHE_FORMAT + 1)
    second = train.train(fresh_model(), loss_fn, 5, cache_key={"data": "x"}, progress=False)
    assert not second.from_cache and second.cache_file != first.cache_file


def test_cache_keeps_the_weight_average():
    loss_fn = make_problem()
    first = train.train(fresh_model(), loss_fn, 20, ema_decay=0.9, cache_key={"k": 1}, progress=False)
    second = train.train(fresh_model(), loss_fn, 20, ema_decay=0.9, cache_key={"k": 1}, progress=False)
    assert second.from_cache and same_weights(first.ema, second.ema) and second.best is second.ema


def test_ema_keeps_a_weight_average_of_the_same_run():
    loss_fn = make_problem()
    plain = train.train(fresh_model(), loss_fn, 40, progress=False)
    averaged = train.train(fresh_model(), loss_fn, 40, ema_decay=0.9, progress=False)
    assert plain.ema is None and averaged.ema is not None and averaged.best is averaged.ema
    assert same_weights(averaged.model, plain.model)  # the average does not change the run
    pairs = zip(averaged.ema.parameters(), averaged.model.parameters(), strict=True)
    assert all(not torch.equal(a, b) for a, b in pairs)  # the average lags behind the last iterate
    with pytest.raises(ValueError, match="ema_decay"):
        train.train(fresh_model(), loss_fn, 5, ema_decay=1.5, progress=False)


def test_ema_update_moves_towards_the_model():
    average, model = torch.nn.Linear(2, 1), torch.nn.Linear(2, 1)
    before = [p.detach().clone() for p in average.parameters()]
    train.ema_update(average, model, 0.75)
    for new, old, target in zip(average.parameters(), before, model.parameters(), strict=True):
        torch.testing.assert_close(new, 0.75 * old + 0.25 * target)
    assert all(not p.requires_grad or p.grad is None for p in average.parameters())


def test_after_step_sees_every_optimiser_step():
    steps = []
    train.train(fresh_model(), make_problem(), 7, after_step=lambda m: steps.append(m.training), progress=False)
    assert steps == [True] * 7
    with pytest.raises(TypeError, match="after_step must be a callable"):
        train.train(fresh_model(), make_problem(), 2, after_step=3, progress=False)


def test_parameters_without_gradients_are_not_optimised():
    model = fresh_model()
    frozen = model.layers[0]
    frozen.requires_grad_(False)
    before = frozen.weight.detach().clone()
    train.train(model, make_problem(), 5, progress=False)
    assert torch.equal(frozen.weight, before)


def test_draw_and_default_warmup():
    pool = torch.arange(10.0)[:, None].expand(10, 3)
    batch = train.draw(pool, 64, torch.Generator().manual_seed(0))
    assert batch.shape == (64, 3) and set(batch[:, 0].tolist()) <= set(range(10))
    assert len(set(batch[:, 0].tolist())) > 5  # with replacement, from the whole pool
    again = train.draw(pool, 64, torch.Generator().manual_seed(0))
    assert torch.equal(batch, again)
    assert [train.default_warmup(n) for n in (1, 49, 50, 1000, 100_000)] == [1, 1, 1, 20, 500]


def test_nan_loss_stops_with_the_step_named():
    loss_fn = make_problem()

    def exploding(model, gen, progress):
        loss = loss_fn(model, gen, progress)
        return loss * float("nan") if len(exploding.seen) >= 7 else (exploding.seen.append(1) or loss)

    exploding.seen = []
    with pytest.raises(FloatingPointError, match=r"training net: the loss is nan at step 7 of 20 \(last finite loss"):
        train.train(fresh_model(), exploding, 20, name="net", progress=False)


def test_max_seconds_stops_early():
    result = train.train(fresh_model(), make_problem(), 10_000_000, max_seconds=0.5, progress=False)
    assert 0 < result.steps < 10_000_000 and len(result.losses) == result.steps


def test_progress_bar_is_drawn_on_request(capsys):
    train.train(fresh_model(), make_problem(), 3, name="shown", progress=True)
    assert "training shown" in capsys.readouterr().out
    train.train(fresh_model(), make_problem(), 3, name="hidden", progress=False)
    assert "training hidden" not in capsys.readouterr().out


def test_bad_arguments():
    with pytest.raises(TypeError, match="nn.Module"):
        train.train(lambda x: x, make_problem(), 10)
    with pytest.raises(ValueError, match="train_steps must be >= 1"):
        train.train(fresh_model(), make_problem(), 0)
    with pytest.raises(ValueError, match="schedule"):
        train.train(fresh_model(), make_problem(), 5, schedule="step")
    with pytest.raises(TypeError, match="scalar tensor"):
        train.train(fresh_model(), lambda m, g, p: torch.zeros(3, requires_grad=True), 5, progress=False)
    with pytest.raises(TypeError, match="loss_fn must be a callable"):
        train.train(fresh_model(), "loss", 5)
    with pytest.raises(ValueError, match="lr must be a finite number > 0"):
        train.train(fresh_model(), make_problem(), 5, lr=0.0)
    with pytest.raises(TypeError, match="steps"):
        train.train(fresh_model(), make_problem(), steps=5)  # the argument is called train_steps


def test_the_ema_decay_warms_up_so_the_average_forgets_the_initial_weights():
    assert train.ema_decay_at(0, 0.999) == pytest.approx(0.1)
    assert train.ema_decay_at(90, 0.999) == pytest.approx(0.91)
    assert train.ema_decay_at(100_000, 0.999) == 0.999
    weight_on_start = math.prod(train.ema_decay_at(k, 0.999) for k in range(2000))
    assert weight_on_start < 1e-3, "after 2000 steps the start weighs nothing (a fixed 0.999 would keep 13.5%)"
