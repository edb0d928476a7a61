"""Images (issue 18, the library): the digits' fixed split, the 64-dimensional mixture oracle fitted to them, the
Fréchet distance on a hand-computed case, the memorisation ratio, the digits classifier, the U-Net, and ``fit``
choosing the U-Net for image-shaped data."""

from __future__ import annotations

import math

import pytest
import torch

import flowlib
from flowlib import data, metrics, sampling
from flowlib.nets import UNet


@pytest.fixture(scope="module")
def mixture():
    return data.digits_mixture()


def test_the_digits_split_is_fixed_stratified_and_disjoint():
    train, heldout, everything = data.digits("train"), data.digits("heldout"), data.digits()
    assert train.images.shape == (1437, 1, 8, 8) and heldout.images.shape == (360, 1, 8, 8)
    assert everything.images.shape == (1797, 1, 8, 8)
    counts = torch.bincount(heldout.labels, minlength=10)
    assert int(counts.min()) >= 35 and int(counts.max()) <= 37, "stratified: every class has its share"
    distances = torch.cdist(heldout.images.reshape(360, 64), train.images.reshape(1437, 64))
    assert int((distances == 0).sum()) <= 5, "no held-out image is a training image (a few exact duplicates exist)"
    assert torch.equal(data.digits("heldout").images, heldout.images), "the same split every call"
    with pytest.raises(ValueError, match="split"):
        data.digits("test")


def test_the_digits_mixture_is_a_64_dimensional_oracle(mixture):
    assert mixture.dim == 64 and mixture.n_components == 40
    samples = mixture.sample(400, seed=0).float()
    report = metrics.digits_report(samples)
    assert report.ratio < 2.5, f"the mixture's samples should look like digits: {report}"
    assert min(report.class_counts) > 15, "every digit appears"
    images = samples[:3].reshape(3, 1, 8, 8)
    assert mixture.velocity(images, 0.5).shape == (3, 1, 8, 8)


def test_the_64_dimensional_flow_map_composes_and_inverts(mixture):
    x = mixture.sample_marginal(6, 0.2, seed=1)
    direct = mixture.flow_map(x, 0.2, 0.9, steps_per_unit=64)
    composed = mixture.flow_map(mixture.flow_map(x, 0.2, 0.5, steps_per_unit=64), 0.5, 0.9, steps_per_unit=64)
    assert (direct - composed).abs().max() < 1e-4
    back = mixture.flow_map(direct, 0.9, 0.2, steps_per_unit=64)
    assert (back - x).abs().max() < 1e-4


def test_the_64_dimensional_velocity_solves_the_continuity_equation(mixture):
    """d/dt log p_t + div b_t + b_t . grad log p_t = 0 in 64 dimensions, as in 2D."""
    t, h = 0.6, 1e-5
    x = mixture.sample_marginal(4, t, seed=2).requires_grad_(True)
    dlogp_dt = (mixture.log_prob(x.detach(), t + h) - mixture.log_prob(x.detach(), t - h)) / (2 * h)
    score = torch.autograd.grad(mixture.log_prob(x, t).sum(), x)[0]
    velocity = mixture.velocity(x, t)
    divergence = sum(torch.autograd.grad(velocity[:, i].sum(), x, retain_graph=True)[0][:, i] for i in range(64))
    residual = dlogp_dt + divergence + (velocity * score).sum(1)
    assert residual.abs().max() < 1e-5 * (1 + dlogp_dt.abs().max())


def test_frechet_distance_matches_a_hand_computed_case():
    """Two Gaussians with diagonal covariances: FD = |mu_a - mu_b|^2 + sum (sd_a - sd_b)^2."""
    generator = torch.Generator().manual_seed(0)
    n = 200_000
    sd_a, sd_b = torch.tensor([1.0, 2.0, 0.5]), torch.tensor([2.0, 1.0, 0.5])
    mu_a, mu_b = torch.tensor([0.0, 1.0, 0.0]), torch.tensor([1.0, 1.0, 2.0])
    a = mu_a + sd_a * torch.randn(n, 3, generator=generator, dtype=torch.float64)
    b = mu_b + sd_b * torch.randn(n, 3, generator=generator, dtype=torch.float64)
    expected = float((mu_a - mu_b).pow(2).sum() + (sd_a - sd_b).pow(2).sum())  # 5 + 2 = 7
    assert metrics.frechet_distance(a, b) == pytest.approx(expected, rel=0.02)
    assert metrics.frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(ValueError, match="at least 2"):
        metrics.frechet_distance(a[:1], b)


def test_frechet_distance_of_exact_covariances_with_a_rotation():
    """A cloud and its quarter turn: covariances diag(1, 0) and diag(0, 1), whose cross term vanishes."""
    a = torch.tensor([[1.0, 0.0], [0.0, 0.0], [-1.0, 0.0], [0.0, 0.0]], dtype=torch.float64) * math.sqrt(1.5)
    b = a[:, [1, 0]]  # the same cloud turned by 90 degrees: covariances diag(1, 0) and diag(0, 1)
    # Sigma_a = diag(1, 0), Sigma_b = diag(0, 1): the cross term is 0, so FD = tr Sigma_a + tr Sigma_b = 2
    assert metrics.frechet_distance(a, b) == pytest.approx(2.0, abs=1e-9)


def test_memorisation_ratio_tells_copies_from_new_digits():
    train, heldout = data.digits("train").images, data.digits("heldout").images
    assert metrics.memorisation_ratio(train[:300], train, heldout) == 0.0, "copies sit on the training set"
    assert metrics.memorisation_ratio(heldout, train, heldout) == pytest.approx(1.0), "real unseen digits score 1"
    noisy = (heldout + 0.5 * torch.randn(heldout.shape, generator=torch.Generator().manual_seed(0))).clamp(-1, 1)
    assert metrics.memorisation_ratio(noisy, train, heldout) > 1.2, "samples off the data score above 1"


def test_the_digits_classifier_is_accurate_deterministic_and_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("FLOWLIB_CACHE", str(tmp_path))
    classifier = metrics.digits_classifier()
    assert classifier.accuracy >= 0.95
    assert (tmp_path / f"digits-classifier-v{metrics.DIGITS_CLASSIFIER_FORMAT}.pt").exists()
    again = metrics.digits_classifier()
    assert again.accuracy == classifier.accuracy
    images = data.digits("heldout").images[:8]
    assert torch.equal(again.features(images), classifier.features(images))
    assert classifier.features(images).shape == (8, 64)


def test_a_digits_report_puts_real_data_at_the_floor_and_noise_far_above(tmp_path, monkeypatch):
    monkeypatch.setenv("FLOWLIB_CACHE", str(tmp_path))
    real = metrics.digits_report(data.digits("train").images, seed=1)
    assert 0.7 < real.ratio < 1.5 and real.memorisation == 0.0
    noise = metrics.digits_report(torch.rand(360, 1, 8, 8) * 2 - 1)
    assert noise.ratio > 20 and noise.confidence < real.confidence
    assert sum(noise.class_counts) == 360 and "memorisation ratio" in str(noise)
    with pytest.raises(ValueError, match="more than"):
        metrics.digits_report(torch.zeros(10, 64), n=20)


@pytest.mark.parametrize("size, levels", [(8, 2), (28, 3), (7, 2)])
def test_the_unet_keeps_image_shapes_and_starts_at_zero(size, levels):
    net = UNet(width=8, levels=levels)
    x = torch.randn(3, 1, size, size)
    out = net(x, torch.rand(3), 0.9).detach()
    assert out.shape == x.shape and float(out.abs().max()) == 0.0, "zero last layer: an untrained map is the identity"
    torch.nn.init.normal_(net.out.weight)
    assert float(net(x, 0.1, 0.9).detach().abs().max()) > 0
    rgb = UNet(channels=3, width=8, n_times=1, gap=False)
    assert rgb(torch.randn(2, 3, 8, 8), 0.5).shape == (2, 3, 8, 8)


def test_the_unet_explains_bad_input():
    net = UNet(width=8)
    with pytest.raises(ValueError, match=r"images of shape \(batch, 1, H, W\)"):
        net(torch.randn(3, 64), 0.1, 0.5)
    with pytest.raises(TypeError, match="takes 2 time"):
        net(torch.randn(3, 1, 8, 8), 0.1)
    with pytest.raises(ValueError, match="gap=True needs n_times=2"):
        UNet(n_times=1)


def test_fit_trains_a_unet_on_images_and_an_mlp_on_request():
    images = data.digits("train").images
    small = dict(train_steps=2, progress=False, cache=False, batch_size=16, unet_width=8)
    model = flowlib.fit("psd", images, **small)
    assert isinstance(model.net, UNet)
    assert sampling.sample(model, torch.randn(4, 1, 8, 8), 2).shape == (4, 1, 8, 8)
    velocity = flowlib.fit("flow_matching", images, **small)
    assert isinstance(velocity.net, UNet) and velocity.net.n_times == 1
    flat = flowlib.fit("psd", images, **{**small, "network": "mlp", "width": 16, "depth": 1})
    assert not isinstance(flat.net, UNet)
    with pytest.raises(ValueError, match="network='unet' needs images"):
        flowlib.fit("psd", "checkerboard", **{**small, "network": "unet"})
    with pytest.raises(ValueError, match="network"):
        flowlib.fit("psd", images, **{**small, "network": "cnn"})


def test_the_classifier_is_trained_even_when_first_called_without_gradients(tmp_path, monkeypatch):
    """The first score may come from inside ``torch.no_grad()`` (a sampling cell); training must still happen."""
    monkeypatch.setenv("FLOWLIB_CACHE", str(tmp_path))
    with torch.no_grad():
        report = metrics.digits_report(data.digits("heldout").images)
    assert report.fd == pytest.approx(0.0, abs=1e-6) and metrics.digits_classifier().accuracy >= 0.95


def test_image_datasets_by_name_and_the_28x28_path_on_upsampled_digits(tmp_path, monkeypatch):
    """``digits28`` is the 28x28 code path (MNIST's size) with no download: data, classifier, report, U-Net."""
    monkeypatch.setenv("FLOWLIB_CACHE", str(tmp_path))
    assert torch.equal(data.images("digits", "heldout").images, data.digits("heldout").images)
    big = data.images("digits28", "heldout")
    assert big.images.shape == (360, 1, 28, 28) and float(big.images.min()) >= -1 and float(big.images.max()) <= 1
    assert torch.equal(big.labels, data.digits("heldout").labels)
    classifier = metrics.image_classifier("digits28")
    assert classifier.accuracy >= 0.95 and classifier.n_pixels == 784
    assert (tmp_path / f"digits28-classifier-v{metrics.DIGITS_CLASSIFIER_FORMAT}.pt").exists()
    report = metrics.image_report(data.images("digits28", "train").images, "digits28", seed=1)
    assert 0.7 < report.ratio < 1.5 and report.memorisation < 1e-4, "training images are copies of themselves"
    with pytest.raises(ValueError, match="784"):
        metrics.image_report(data.digits("train").images, "digits28")
    model = flowlib.fit(
        "flow_matching", big.images, train_steps=2, cache=False, progress=False, unet_width=8, unet_levels=3
    )
    assert sampling.sample(model, torch.randn(2, 1, 28, 28), 2).shape == (2, 1, 28, 28)
    with pytest.raises(ValueError, match="image dataset name"):
        data.images("cifar10")


def test_mnist_without_torchvision_or_network_says_what_to_do(monkeypatch, tmp_path):
    import sys
    import types

    monkeypatch.setitem(sys.modules, "torchvision", None)  # as if not installed
    monkeypatch.setitem(sys.modules, "torchvision.datasets", None)
    with pytest.raises(data.DatasetUnavailableError, match=r"pip install torchvision.*digits need nothing"):
        data.mnist()

    def offline(*args, **kwargs):
        raise RuntimeError("Error downloading train-images-idx3-ubyte.gz")

    fake = types.ModuleType("torchvision.datasets")
    fake.MNIST = offline
    monkeypatch.setitem(sys.modules, "torchvision", types.ModuleType("torchvision"))
    monkeypatch.setitem(sys.modules, "torchvision.datasets", fake)
    with pytest.raises(
        data.DatasetUnavailableError, match=r"could not be loaded.*Error downloading.*data.images\('digits'\)"
    ):
        data.mnist("heldout", root=str(tmp_path))
    with pytest.raises(data.DatasetUnavailableError):
        data.images("mnist")


def test_mnist_through_torchvision_is_scaled_and_split(monkeypatch, tmp_path):
    """With torchvision's MNIST class replaced by a tiny stand-in: 0-255 pixels become [-1, 1], splits are kept."""
    import sys
    import types

    class FakeMNIST:
        def __init__(self, root, train, download):
            n = 5 if train else 3
            self.data = torch.full((n, 28, 28), 255 if train else 0, dtype=torch.uint8)
            self.targets = torch.arange(n)

    fake = types.ModuleType("torchvision.datasets")
    fake.MNIST = FakeMNIST
    monkeypatch.setitem(sys.modules, "torchvision", types.ModuleType("torchvision"))
    monkeypatch.setitem(sys.modules, "torchvision.datasets", fake)
    train, heldout, both = data.mnist("train"), data.mnist("heldout"), data.mnist("all")
    assert train.images.shape == (5, 1, 28, 28) and float(train.images.min()) == 1.0
    assert heldout.images.shape == (3, 1, 28, 28) and float(heldout.images.max()) == -1.0
    assert both.images.shape == (8, 1, 28, 28) and train.labels.dtype == torch.int64


def test_upsample_explains_bad_input():
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        data.upsample(torch.zeros(3, 64), 28)
    assert data.upsample(torch.ones(2, 1, 8, 8), 28).shape == (2, 1, 28, 28)


def test_report_table_lists_every_row_with_its_ratios():
    report = metrics.DigitsReport(fd=4.0, fd_floor=2.0, class_counts=(3,) * 10, confidence=0.9,
                                  real_confidence=0.99, memorisation=1.1, n=30)  # fmt: skip
    table = metrics.report_table({"model": report}, reference=8.0, reference_name="teacher")
    text = str(table)
    row = next(line for line in text.splitlines() if line.startswith("model"))
    assert row.split()[1:6] == ["4.00", "2.00", "0.50", "1.10", "0.90"]
    assert "FD / teacher" in text and "Floor (real vs real, 30 images): FD 2.00" in text
    html = table._repr_html_()
    assert html.count("<tr>") == 2 and "<td" in html and "FD / teacher" in html, "an HTML table on the page"
    with pytest.raises(TypeError, match="DigitsReport"):
        metrics.report_table({"model": 1.0})


def test_map_error_grid_passes_images_to_image_maps(mixture):
    """A map that takes only images, scored against the 64-D oracle: the exact map itself scores zero."""

    def image_only(x, s, t):
        assert x.ndim == 4, "the map is given images"
        return mixture.flow_map(x.reshape(x.shape[0], 64), s, t, steps_per_unit=16).reshape(x.shape)

    errors = metrics.map_error_grid(
        {"exact": image_only, "still": lambda x, s, t: x}, mixture, [0.0, 1.0], n=3, image_shape=(1, 8, 8)
    )
    assert float(errors["exact"][0, 1]) < 0.05 * float(errors["still"][0, 1])
    with pytest.raises(ValueError, match="image_shape"):
        metrics.map_error_grid(image_only, mixture, [0.0, 1.0], n=3, image_shape=(1, 4, 4))
