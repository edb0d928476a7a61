"""The book's shipped models (flowlib.pretrained): present, small, fresh, and as good as their records say."""

import dataclasses
import json
import re
from pathlib import Path

import pytest

from flowlib import pretrained

ROOT = Path(__file__).resolve().parents[1]


def test_every_recipe_is_shipped_small_and_packaged():
    assert pretrained.available() == list(pretrained.RECIPES)
    sizes = {name: (pretrained.FOLDER / f"{name}.pt").stat().st_size / 2**20 for name in pretrained.RECIPES}
    assert max(sizes.values()) <= 5, sizes
    assert sum(sizes.values()) <= 25, sizes
    line = re.search(r'^"flowlib.assets" = \[(.*)\]', (ROOT / "pyproject.toml").read_text(), re.MULTILINE)
    globs = re.findall(r'"([^"]+)"', line.group(1))
    for path in pretrained.FOLDER.iterdir():
        relative = path.relative_to(pretrained.FOLDER.parent)
        assert any(relative.match(pattern) for pattern in globs), f"{relative} would not be installed"


@pytest.mark.parametrize("name", list(pretrained.RECIPES))
def test_a_shipped_model_loads_and_reproduces_its_recorded_fd(name):
    model = pretrained.load(name, device="cpu")
    record = model.record
    assert record.name == name and record.method == pretrained.RECIPES[name].method
    assert record.seconds >= 20 * 60, "a shipped model trains for at least twenty minutes"
    assert record.steps == pretrained.RECIPES[name].train_steps
    # the record's first draw again (noise seed 0): the same weights and code give it within its standard error
    fd = pretrained.fd_of(model, record.dataset, record.fd_steps, seed=0)
    assert abs(fd - record.fd_values[0]) <= record.fd_se, (fd, record.fd_values[0], record.fd_se)


def test_a_stale_model_is_refused_with_the_command_that_remakes_it(monkeypatch):
    monkeypatch.setattr(pretrained, "code_fingerprint", lambda: "0" * 16)
    with pytest.raises(ValueError, match=r"stale: the network code .* `python -m flowlib\.pretrained digits-psd`"):
        pretrained.load("digits-psd")
    monkeypatch.setattr(pretrained, "FORMAT", pretrained.FORMAT + 1)
    assert "format" in pretrained.stale_reason(pretrained.read_record("digits-psd"))


def test_the_code_fingerprint_ignores_wording_but_not_code():
    source = 'def f(x):\n    """Doubles."""\n    return 2 * x  # a comment\n'
    reworded = source.replace("Doubles.", "Twice x.").replace("a comment", "another")
    assert pretrained._without_docstrings(source) == pretrained._without_docstrings(reworded)
    assert pretrained._without_docstrings(source) != pretrained._without_docstrings(source.replace("2 *", "3 *"))


def test_bad_names_and_missing_files(monkeypatch, tmp_path):
    with pytest.raises(ValueError, match="digits-psd"):
        pretrained.load("digits-nothing")
    monkeypatch.setattr(pretrained, "FOLDER", tmp_path)
    with pytest.raises(FileNotFoundError, match=r"python -m flowlib\.pretrained digits-teacher"):
        pretrained.load("digits-teacher")
    assert pretrained.available() == []


def test_the_command_makes_a_model_and_a_record_that_load(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(pretrained, "FOLDER", tmp_path)
    monkeypatch.setattr(pretrained, "FD_REPEATS", 2)
    monkeypatch.setenv("FLOWLIB_CACHE", str(tmp_path / "cache"))
    quick = dataclasses.replace(pretrained.RECIPES["digits-psd"], train_steps=3, sample_steps=1)
    monkeypatch.setitem(pretrained.RECIPES, "digits-psd", quick)
    pretrained._main(["digits-psd"])
    record = json.loads((tmp_path / "digits-psd.json").read_text())
    assert record["steps"] == 3 and len(record["fd_values"]) == 2 and record["code"] == pretrained.code_fingerprint()
    assert pretrained.load("digits-psd").record.fd == record["fd"]
    pretrained._main(["--check", "digits-psd", "digits-teacher"])
    out = capsys.readouterr().out
    assert "digits-psd: up to date" in out and "digits-teacher: the shipped model" in out


def test_the_command_refuses_an_unknown_name():
    with pytest.raises(ValueError, match="name"):
        pretrained._main(["digits-nothing"])
