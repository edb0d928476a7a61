"""The benchmark (benchmarks/, beside the library) runs end to end in quick mode and writes what the appendix
includes. The quick run is shared by the tests of this module: it trains every method once."""

import json
import math
import shutil

import pytest
import torch

from benchmarks import __main__ as cli
from benchmarks import report, run
from flowlib import nets
from flowlib.flowmap import FlowMap

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    result = cli.main(["--quick", "--out", str(out)])
    return result, out


def test_every_method_is_scored_on_both_datasets(quick):
    result, _ = quick
    scored = 0
    for dataset in run.DATASETS:
        section = result["datasets"][dataset]
        assert set(section["methods"]) == set(run.FROM_SCRATCH + tuple(run.VARIANTS) + run.DISTILLED)
        assert section["floor"]["sliced_w2"]["value"] > 0
        for method, row in section["methods"].items():
            if "diverged" in row:
                continue
            scored += 1
            assert row["train_seconds"] > 0 and row["train_steps"] > 0
            for k, entry in row["steps"].items():
                assert entry["sliced_w2"]["value"] > 0, (dataset, method, k)
            assert (row["map_error"] is None) == (dataset == "checkerboard")
    assert scored >= len(run.DATASETS) * len(run.BenchConfig().methods) - 2, "most methods must be scored"


def test_ratios_are_paired_against_the_baseline(quick):
    result, _ = quick
    section = result["datasets"]["eight_gaussians"]
    row = next(r for r in section["methods"].values() if "steps" in r)
    entry = row["steps"]["1"]["sliced_w2"]
    assert math.isfinite(entry["ratio"]) and entry["ratio_se"] >= 0
    # the mean of per-repeat ratios is close to the ratio of the means, not equal to it
    assert entry["ratio"] == pytest.approx(entry["value"] / section["baseline"]["sliced_w2"]["value"], rel=0.1)


def test_outputs_are_written_and_targets_checked(quick):
    result, out = quick
    saved = json.loads((out / "benchmark.json").read_text())
    assert saved["config"]["budget"] == result["config"]["budget"]
    table = (out / "benchmark.md").read_text()
    assert "## checkerboard" in table and "## eight gaussians" in table and "Targets" in table
    for verdict in result["targets"].values():
        assert run.from_scratch(verdict["best_method"])  # a method or a variant of one
        assert set(verdict["met"]) == {"one_step", "four_step", "map_error"}


def test_precision_summarises_every_ratio(quick):
    result, out = quick
    spread = result["precision"]
    ratios = [
        entry["sliced_w2"]
        for section in result["datasets"].values()
        for row in section["methods"].values()
        for entry in row.get("steps", {}).values()
    ]
    relative = [r["ratio_se"] / r["ratio"] for r in ratios if math.isfinite(r["ratio"])]
    assert spread["count"] == len(relative)
    assert spread["max"] == pytest.approx(max(relative))
    assert "Standard errors of the" in (out / "benchmark.md").read_text()


def test_evaluation_sets_are_paired_and_quasi_random():
    config = run.BenchConfig.quick()
    first, second = run.Evaluator("eight_gaussians", config), run.Evaluator("eight_gaussians", config)
    assert all(bool((a == b).all()) for a, b in zip(first.noise, second.noise, strict=True))
    assert not bool((first.references[0] == first.references[1]).all())  # independent repeats


def test_merge_replaces_only_the_datasets_rerun(quick, tmp_path):
    _, out = quick
    shutil.copy(out / "benchmark.json", tmp_path / "benchmark.json")
    previous = json.loads((tmp_path / "benchmark.json").read_text())
    rerun = cli.main(["--quick", "--datasets", "eight_gaussians", "--out", str(tmp_path), "--merge"])
    merged = json.loads((tmp_path / "benchmark.json").read_text())
    assert list(merged["datasets"]) == list(run.DATASETS)
    assert merged["datasets"]["checkerboard"] == previous["datasets"]["checkerboard"]
    fresh = merged["datasets"]["eight_gaussians"]["baseline"]["sliced_w2"]["value"]
    assert fresh == rerun["datasets"]["eight_gaussians"]["baseline"]["sliced_w2"]["value"]
    assert merged["precision"] == report.precision(merged) and merged["targets"] == report.check_targets(merged)
    assert (tmp_path / "benchmark.md").read_text() == report.to_markdown(merged)


def test_merge_refuses_runs_that_are_not_comparable(quick, tmp_path):
    result, _ = quick
    saved = json.loads(json.dumps(result, default=str))
    for key, change in (("n_eval", ("config", "n_eval")), ("threads", ("machine", "cpu_threads"))):
        other = json.loads(json.dumps(saved))
        other[change[0]][change[1]] += 1
        with pytest.raises(ValueError, match=key):
            report.merge(saved, other)
    with pytest.raises(ValueError, match="--merge needs an earlier run"):
        cli.main(["--quick", "--datasets", "checkerboard", "--merge", "--out", str(tmp_path)])


def test_consistency_repeats_draw_their_own_renoise_while_flow_maps_ignore_the_repeat():
    """Repeats of a consistency sampler differ only through the re-noise; a flow-map sampler is deterministic."""
    torch.manual_seed(0)
    net = nets.MLP(2, width=16, depth=2, n_times=2)
    z = torch.randn(64, 2)
    renoised = run._sampler(FlowMap(net, kind="consistency"), 2)
    assert not torch.allclose(renoised(z, 0, 0), renoised(z, 1, 0))
    assert not torch.allclose(renoised(z, 0, 0), renoised(z, 0, 1))
    assert torch.equal(renoised(z, 0, 1), renoised(z, 0, 1))
    composed = run._sampler(FlowMap(net), 2)
    assert torch.equal(composed(z, 0, 0), composed(z, 1, 1))


def test_a_repeat_scores_the_mean_over_its_renoise_draws():
    """With draws=3 each repeat's score is the mean of the three draws' scores, each against that repeat's data."""
    torch.manual_seed(0)
    model = FlowMap(nets.MLP(2, width=16, depth=2, n_times=2), kind="consistency")
    evaluator = run.Evaluator("eight_gaussians", run.BenchConfig.quick())
    sampler = run._sampler(model, 2)
    averaged = evaluator.scores(sampler, draws=3)
    single = [evaluator.scores(lambda z, r, d, shift=shift: sampler(z, r, shift)) for shift in range(3)]
    for metric in ("sliced_w2", "energy"):
        expected = [sum(one[metric][r] for one in single) / 3 for r in range(evaluator.config.repeats)]
        assert averaged[metric] == pytest.approx(expected, rel=1e-6)
        assert single[0][metric] != pytest.approx(single[1][metric], rel=1e-6)  # the draws differ
    with pytest.raises(ValueError, match="draws"):
        evaluator.scores(sampler, draws=0)


def test_budget_options_reach_the_run_its_record_and_the_table(quick):
    """The full run applies BUDGET_OPTIONS on top of the defaults; the JSON keeps them and the table lists them."""
    assert run.BenchConfig().method_options == run.BUDGET_OPTIONS
    assert run.BenchConfig().method_options is not run.BUDGET_OPTIONS  # a run cannot edit the constant
    result, _ = quick
    assert "Options set for this wall-clock budget" not in report.to_markdown(result)  # quick mode sets none
    tuned = json.loads(json.dumps(result, default=str))
    tuned["config"]["method_options"] = {"psd": {"batch_size": 256}}
    assert "psd: `batch_size=256`" in report.to_markdown(tuned)
    with pytest.raises(ValueError, match="method_options"):
        report.merge(json.loads(json.dumps(result, default=str)), tuned)


def test_the_reference_baseline_is_the_median_of_its_seeds(quick, monkeypatch):
    """Every seed's baseline is recorded; the one with the median sliced W2 is the reference."""
    result, out = quick
    for section in result["datasets"].values():
        runs = section["baseline"]["runs"]
        assert [run["seed"] for run in runs] == list(range(run.BenchConfig.quick().baseline_seeds))
        values = sorted(run["sliced_w2"]["value"] for run in runs)
        assert section["baseline"]["sliced_w2"]["value"] == values[(len(values) - 1) // 2]
    assert "the median of 2 seeds' baselines" in (out / "benchmark.md").read_text()

    def fake_run(dataset, config, evaluator, seed):
        value = [0.03, 0.01, 0.02][seed]
        return {"seed": seed, "train_steps": 1, "sliced_w2": {"value": value, "se": 0.0}}, {"seed": seed}, seed

    monkeypatch.setattr(run, "_baseline_run", fake_run)
    summary, scores, velocity = run._baseline("eight_gaussians", run.BenchConfig(baseline_seeds=3), None)
    assert summary["seed"] == 2 and scores == {"seed": 2} and velocity == 2  # 0.02 is the median
    assert [run["sliced_w2"]["value"] for run in summary["runs"]] == [0.03, 0.01, 0.02]


def test_each_finished_dataset_is_handed_on_so_an_interrupted_run_keeps_it():
    """on_dataset sees every dataset as soon as its last method is scored."""
    config = run.BenchConfig.quick()
    config.methods, config.baseline_seeds, config.repeats = ("psd",), 1, 2
    seen = []
    result = run.run(config, progress=False, on_dataset=lambda partial: seen.append(json.loads(json.dumps(partial))))
    assert [list(partial["datasets"]) for partial in seen] == [["checkerboard"], ["checkerboard", "eight_gaussians"]]
    assert set(seen[0]["datasets"]["checkerboard"]["methods"]) == {"psd"}
    assert seen[-1]["datasets"] == json.loads(json.dumps(result["datasets"]))


def test_main_removes_the_partial_file_after_a_complete_run(quick):
    _, out = quick
    assert (out / "benchmark.json").exists() and not (out / "benchmark.partial.json").exists()


def test_a_baseline_only_run_hands_on_each_dataset_and_says_it_is_a_single_training():
    """With no methods the baseline is a dataset's last job; one seed is labelled as a single training."""
    config = run.BenchConfig.quick()
    config.methods, config.baseline_seeds, config.datasets = (), 1, ("checkerboard",)
    seen = []
    result = run.run(config, progress=False, on_dataset=seen.append)
    assert [list(partial["datasets"]) for partial in seen] == [["checkerboard"]]
    assert ", a single training;" in report.to_markdown(result)


def test_psd_variants_train_psd_with_their_options(quick):
    """Boffi et al.'s PSD (two jumps: the midpoint, or a uniform intermediate time) beside the book's four jumps."""
    result, _ = quick
    row = result["datasets"]["checkerboard"]["methods"]["psd_uniform"]
    assert row["options"]["psd_intermediate"] == "uniform" and row["options"]["psd_jumps"] == 2
    assert result["datasets"]["checkerboard"]["methods"]["psd_midpoint"]["options"]["psd_jumps"] == 2
    assert row["setting"] == "from scratch" and run.from_scratch("psd_uniform")
    assert run.method_of("psd_uniform") == "psd" and run.method_of("lsd") == "lsd"


def test_a_variant_gets_its_methods_budget_options(monkeypatch):
    """Equal effort: a variant trains with its method's budget options, then its own."""
    seen = {}

    def fake_fit(method, pool, **kwargs):
        seen.update(kwargs, method=method)
        raise FloatingPointError("stopped here")

    monkeypatch.setattr(run.flowlib, "fit", fake_fit)
    config = run.BenchConfig.quick()
    config.method_options = {"psd": {"batch_size": 64, "psd_jumps": 4}}
    assert run._method("psd_uniform", "checkerboard", config, None, {}, None) == {"diverged": "stopped here"}
    assert seen["method"] == "psd" and seen["batch_size"] == 64
    assert seen["psd_intermediate"] == "uniform" and seen["psd_jumps"] == 2, "the variant's own options win"


def test_the_digits_rows_run_end_to_end_and_write_their_table(tmp_path):
    result = cli.main(["--digits", "--quick", "--out", str(tmp_path)])
    assert json.loads((tmp_path / "benchmark_digits.json").read_text())["config"]["seeds"] == [0, 1]
    table = (tmp_path / "benchmark_digits.md").read_text()
    assert "| flow matching (teacher) |" in table and "| psd | 1 (1) |" in table and "| target |" in table
    teacher = result["teacher"]["fd_ratio"]
    assert len(teacher["values"]) == 2 and teacher["se"] is not None and teacher["mean"] > 0
    one_step = result["methods"]["psd"]["steps"]["1"]
    assert all(v > 0 for v in one_step["vs_teacher"]["values"]) and len(one_step["memorisation"]["values"]) == 2
    assert any(name.startswith("teacher FD / floor") for name in result["targets"])
    with pytest.raises(ValueError, match="n_eval"):
        from benchmarks import digits

        digits.run_digits(digits.DigitsConfig(n_eval=1000))


def test_the_network_comparison_trains_both_networks_at_one_budget_and_writes_its_table(tmp_path):
    from benchmarks import digits

    result = cli.main(["--digits-networks", "--quick", "--out", str(tmp_path)])
    table = (tmp_path / "benchmark_digits_networks.md").read_text()
    assert "| U-Net (chapter 11) |" in table and "| flattened MLP (256 x 4) |" in table
    assert set(result["networks"]) == set(digits.NETWORKS)
    for row in result["networks"].values():
        assert row["parameters"] > 0 and len(row["teacher"]["fd_ratio"]["values"]) == 2
        assert set(row["psd"]) == {"1", "2"} and all(v > 0 for v in row["psd"]["1"]["fd_ratio"]["values"])
    unet, mlp = (result["networks"][name]["train_steps"]["psd"]["mean"] for name in digits.NETWORKS)
    assert mlp > 0 and unet > 0  # each trained for the budget, whatever steps it reached


def test_the_steering_rows_run_end_to_end_and_write_their_tables(tmp_path):
    from benchmarks.steering import STEERING_METHODS

    result = cli.main(["--steering", "--quick", "--out", str(tmp_path)])
    assert json.loads((tmp_path / "benchmark_steering.json").read_text())["config"]["seeds"] == [0, 1]
    table = (tmp_path / "benchmark_steering.md").read_text()
    assert "| FMTT, flow-map look-ahead | yes |" in table and "| FK steering, denoiser potentials | no |" in table
    assert "| KL-penalised |" in table and "| FMTT, denoiser look-ahead | no |" in table.split("Digits steered")[1]
    judged = [row["judged"]["mean"] for row in result["digits"].values()]  # the independent judge's shares of 3
    assert all(0 <= share <= 1 for share in judged) and len(judged) == 4
    assert "| reward-weighted |" in table and "| target |" in table
    assert len(result["exact_samples"]["w2_ratio"]["values"]) == 3
    rows = result["steering"]["20"]
    assert set(rows) == set(STEERING_METHODS) and all(len(r["w2_ratio"]["values"]) == 2 for r in rows.values())
    assert set(result["rows"]) == {"reward-weighted", "direct (beta = 1)", "KL-penalised", "reference (exact samples)"}
    assert 0 < result["gradient"]["time_ratio"]["mean"] and 0 < result["gradient"]["memory_ratio"]["mean"] < 1
    assert any(name.startswith("best with a flow map") for name in result["targets"])


@pytest.mark.browser
def test_the_redraw_rows_time_every_explorer_in_chromium_and_write_their_table(tmp_path):
    from benchmarks.redraw import CASES

    result = cli.main(["--redraw", "--quick", "--out", str(tmp_path)])
    rows = json.loads((tmp_path / "explorer_redraw.json").read_text())["rows"]
    assert [row["explorer"] for row in rows] == [case.name for case in CASES]
    for row, case in zip(rows, CASES, strict=True):
        assert row["moves"] == 10 * len(case.sliders) and row["median_ms"] > 0
    assert all(0 < row["payload_bytes"] <= 1_000_000 for row in result["rows"])  # issue 32: each page at most 1 MB
    assert "| median (ms) |" in (tmp_path / "explorer_redraw.md").read_text()
    trips = result["round_trips"]  # the live explorer's kernel round trip, in both front ends
    assert sorted(trips) == ["JupyterLab", "Notebook 7"] and all(row["count"] == 5 for row in trips.values())
    assert all(0 < row["median_ms"] <= row["max_ms"] for row in trips.values())
    assert "click to the kernel's answer drawn" in (tmp_path / "explorer_redraw.md").read_text()


def test_the_screen_trains_each_setting_and_seed_against_one_baseline(monkeypatch):
    from benchmarks import screen

    small = run.BenchConfig

    def config(**sizes):
        return small(n_eval=800, repeats=2, projections=32, energy_points=200, map_points=100, **sizes)

    monkeypatch.setattr(screen, "BenchConfig", config)
    settings = [{}, {"batch_size": 64}]
    result = screen.screen("lsd", "checkerboard", settings, seeds=(1, 2), budget=0.3, steps=(1,), progress=False)
    assert [(r["setting"], r["seed"]) for r in result["runs"]] == [(s, k) for s in settings for k in (1, 2)]
    assert all(r["ratio"]["1"] > 0 and r["train_steps"] > 0 for r in result["runs"])
    with pytest.raises(ValueError, match="method must be one of"):
        screen.screen("nope", "checkerboard", settings, seeds=(1,))


def test_a_screening_plan_shares_one_baseline_between_methods(monkeypatch):
    from benchmarks import screen

    small = run.BenchConfig
    baselines = []

    def config(**sizes):
        return small(n_eval=800, repeats=2, projections=32, energy_points=200, map_points=100, **sizes)

    def counted(*args, **kwargs):
        baselines.append(args[0])
        return run._baseline_run(*args, **kwargs)

    monkeypatch.setattr(screen, "BenchConfig", config)
    monkeypatch.setattr(screen, "_baseline_run", counted)
    plan = {"esd": [{}], "consistency_training": [{"target_decay": 0.0}]}
    results = screen.screen_plan(plan, "checkerboard", seeds=(1,), budget=0.3, steps=(1,), progress=False)
    assert baselines == ["checkerboard"]
    assert set(results) == set(plan)
    assert results["esd"]["baseline"] == results["consistency_training"]["baseline"]
    assert results["consistency_training"]["runs"][0]["setting"] == {"target_decay": 0.0}
    with pytest.raises(ValueError, match="empty plan"):
        screen.screen_plan({}, "checkerboard", seeds=(1,))


def test_the_steering_screens_run_end_to_end(tmp_path):
    result = cli.main(["--steering-screens", "--quick", "--out", str(tmp_path)])
    table = (tmp_path / "benchmark_steering_screens.md").read_text()
    assert "| FMTT, flow-map look-ahead, 20 evaluations, c = 0.5 |" in table and "| KL-penalised, lr 0.001 |" in table
    assert all(len(stat["values"]) == 1 for stat in result["kl_rate"].values())
