import pytest
import torch

from flowlib import chapter


@pytest.mark.parametrize("value, smoke", [("", False), ("0", False), ("no", False), ("1", True), ("yes", True)])
def test_smoke_switch(monkeypatch, value, smoke):
    monkeypatch.setenv(chapter.SMOKE_ENV, value)
    assert chapter.is_smoke() is smoke
    assert chapter.pick(full=100, smoke=5) == (5 if smoke else 100)
    assert chapter.setup(seed=1).pick(100, 5) == (5 if smoke else 100)


def test_setup_seeds_everything():
    first = (chapter.setup(seed=3), torch.rand(3))
    second = (chapter.setup(seed=3), torch.rand(3))
    assert torch.equal(first[1], second[1])
    assert "seed 3" in str(first[0])
    with pytest.raises(TypeError, match="seed must be an int"):
        chapter.setup(seed="3")


def test_cache_folder_follows_the_variable(monkeypatch, tmp_path):
    monkeypatch.setenv(chapter.CACHE_ENV, str(tmp_path / "c"))
    assert chapter.cache_dir() == tmp_path / "c"
    (tmp_path / "c" / "a.pt").write_bytes(b"x")
    assert chapter.clear_cache() == 1
    assert list((tmp_path / "c").iterdir()) == []


def test_default_device_follows_flowlib_device(monkeypatch):
    monkeypatch.setenv(chapter.DEVICE_ENV, "cpu")
    assert chapter.default_device() == torch.device("cpu")
    assert chapter.setup(seed=0, style=False).device == torch.device("cpu")
    monkeypatch.setenv(chapter.DEVICE_ENV, "  ")
    assert chapter.default_device() == torch.device("cuda" if torch.cuda.is_available() else "cpu")
    monkeypatch.delenv(chapter.DEVICE_ENV)
    assert chapter.default_device() == torch.device("cuda" if torch.cuda.is_available() else "cpu")


def test_default_device_refuses_what_it_cannot_use(monkeypatch):
    monkeypatch.setenv(chapter.DEVICE_ENV, "gpu0")
    with pytest.raises(ValueError, match="FLOWLIB_DEVICE='gpu0' is not a torch device"):
        chapter.default_device()
    if not torch.cuda.is_available():
        monkeypatch.setenv(chapter.DEVICE_ENV, "cuda")
        with pytest.raises(ValueError, match="asks for CUDA, but torch sees no GPU"):
            chapter.default_device()


def test_expect_checks_a_reading_in_full_mode_and_records_it(monkeypatch, tmp_path):
    import json

    monkeypatch.setenv("FLOWLIB_SMOKE", "0")
    lines = tmp_path / "readings.jsonl"
    monkeypatch.setenv("FLOWLIB_READINGS", str(lines))
    setup = chapter.setup(seed=3, style=False)
    assert setup.expect("ratio", torch.tensor(1.2), above=1, below=1.5) is None
    with pytest.raises(AssertionError, match=r"'ratio' as above 1 and below 1\.5, but this run gives 1\.7 \(seed 3\)"):
        setup.expect("ratio", 1.7, above=1, below=1.5)
    with pytest.raises(AssertionError, match="nan"):
        setup.expect("not a number", float("nan"), below=1)
    recorded = [json.loads(line) for line in lines.read_text().splitlines()]
    assert [(r["reading"], r["value"], r["seed"]) for r in recorded[:2]] == [
        ("ratio", pytest.approx(1.2), 3),
        ("ratio", 1.7, 3),
    ]
    assert recorded[0]["below"] == 1.5 and recorded[0]["above"] == 1


def test_expect_skips_trained_readings_in_smoke_mode_but_not_exact_ones(monkeypatch):
    monkeypatch.setenv("FLOWLIB_SMOKE", "1")
    monkeypatch.delenv("FLOWLIB_READINGS", raising=False)
    setup = chapter.setup(style=False)
    setup.expect("untrained model", 10.0, below=1)  # not checked: no error
    with pytest.raises(AssertionError):
        setup.expect("an exact field's order", 10.0, below=1, in_smoke=True)


def test_a_survey_records_every_reading_and_stops_at_none(monkeypatch, tmp_path):
    monkeypatch.setenv("FLOWLIB_SMOKE", "0")
    monkeypatch.setenv("FLOWLIB_READINGS", str(tmp_path / "r.jsonl"))
    monkeypatch.setenv("FLOWLIB_SURVEY", "1")
    setup = chapter.setup(style=False)
    setup.expect("outside", 5.0, below=1)  # recorded, not raised
    assert "outside" in (tmp_path / "r.jsonl").read_text()


def test_expect_and_the_seed_variable_explain_bad_input(monkeypatch):
    setup = chapter.setup(style=False)
    with pytest.raises(ValueError, match="below=, above="):
        setup.expect("no bound", 1.0)
    with pytest.raises(ValueError, match="below must be a number"):
        setup.expect("a string bound", 1.0, below="2")
    monkeypatch.setenv("FLOWLIB_SEED", "7")
    assert chapter.setup(seed=0, style=False).seed == 7
    monkeypatch.setenv("FLOWLIB_SEED", "seven")
    with pytest.raises(ValueError, match="FLOWLIB_SEED='seven' is not a whole number"):
        chapter.setup(style=False)
