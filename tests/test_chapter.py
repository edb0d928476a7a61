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
