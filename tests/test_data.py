import math

import numpy as np
import pytest
import torch

from pyrogen.data import DATASETS, TOY_ENTROPY, TOYS, load, load_corpus, toy_sample, validate


@pytest.mark.parametrize("name", TOYS)
def test_toys_are_seeded_and_shaped(name):
    a, b, c = (
        toy_sample(name, 1001, seed=1),
        toy_sample(name, 1001, seed=1),
        toy_sample(name, 1001, seed=2),
    )
    assert a.shape == (1001, 2) and a.dtype == torch.float32
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert torch.isfinite(a).all()


def _mc_entropy(x: np.ndarray, log_density) -> tuple[float, float]:
    lp = log_density(x)
    return float(-lp.mean()), float(lp.std() / math.sqrt(len(lp)))


def test_checkerboard_matches_its_closed_form_entropy():
    x = toy_sample("checkerboard", 200_000, seed=0).double().numpy()
    # uniform on the 8 "black" 2x2 squares of [-4, 4]^2: density 1/32
    assert np.all(np.abs(x) <= 4)
    cell = (np.floor(x[:, 0] / 2) + np.floor(x[:, 1] / 2)) % 2
    assert np.all(cell == 0), "every point lies on a black square"
    assert math.log(32) == pytest.approx(TOY_ENTROPY["checkerboard"], abs=1e-3)
    counts = np.histogram2d(x[:, 0], x[:, 1], bins=8, range=[[-4, 4], [-4, 4]])[0]
    nonzero = counts[counts > 0]
    assert len(nonzero) == 32 and nonzero.std() / nonzero.mean() < 0.05


def test_8gaussians_matches_its_entropy():
    from scipy.special import logsumexp

    x = toy_sample("8gaussians", 200_000, seed=0).double().numpy()
    s = 1 / math.sqrt(2)
    centres = 4 * np.array([(1, 0), (-1, 0), (0, 1), (0, -1), (s, s), (s, -s), (-s, s), (-s, -s)]) / 1.414
    sd = 0.5 / 1.414

    def log_density(p):
        d2 = ((p[:, None, :] - centres[None]) ** 2).sum(-1)
        return logsumexp(-0.5 * d2 / sd**2, axis=1) - math.log(8) - math.log(2 * math.pi * sd**2)

    h, se = _mc_entropy(x, log_density)
    assert h == pytest.approx(TOY_ENTROPY["8gaussians"], abs=max(4 * se, 2e-3))


def test_moons_follow_the_ffjord_convention():
    x = toy_sample("moons", 10_000).numpy()
    # noiseless make_moons has mean (0.5, 0.25) (arcs of mean height 2/pi and 1/2 - 2/pi);
    # times 2 and shifted by (-1, -0.2) that is (0, 0.3)
    assert x.mean(0) == pytest.approx([0.0, 0.3], abs=0.02)
    assert x[:, 0].min() == pytest.approx(-3, abs=0.8) and x[:, 0].max() == pytest.approx(3, abs=0.8)


def test_digits_split_is_the_fixed_one():
    ds = load("digits-binary")
    assert (len(ds.train), len(ds.val), len(ds.test)) == (1293, 144, 360)
    assert ds.event_shape == (1, 8, 8) and set(ds.train.unique().tolist()) == {0.0, 1.0}
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    x, y = load_digits(return_X_y=True)
    _, x_test, _, y_test = train_test_split(x, y, test_size=0.2, random_state=0)
    assert torch.equal(ds.test.flatten(1), torch.as_tensor(x_test >= 8, dtype=torch.float32))
    assert torch.equal(ds.labels["test"], torch.as_tensor(y_test))


def test_factorized_bernoulli_floor_on_the_fixed_split():
    """A factorized Bernoulli scores 25.30 nats on the test digits (the demo's floor, by its own function)."""
    from pyrogen.demo import factorized_bernoulli_nll

    ds = load("digits-binary")
    tr = torch.cat([ds.train, ds.val]).flatten(1).double()
    p = (tr.sum(0) + 0.5) / (len(tr) + 1.0)
    te = ds.test.flatten(1).double()
    nll = -(te * p.log() + (1 - te) * (1 - p).log()).sum(1).mean()
    assert float(nll) == pytest.approx(25.30, abs=0.01)
    assert factorized_bernoulli_nll(torch.cat([ds.train, ds.val]), ds.test) == pytest.approx(float(nll), abs=1e-12)


def test_digit_variants_agree():
    b, i, d = load("digits-binary"), load("digits-int"), load("digits")
    assert i.train.dtype == torch.long and int(i.train.max()) == 16
    assert torch.equal((i.test >= 8).float(), b.test)
    assert torch.equal(torch.floor(d.test * 17).long(), i.test)
    assert d.dequantized and d.levels == 17 and float(d.train.max()) < 1


def test_mnist_variants_agree_and_its_parts_are_fixed_stratified_and_disjoint():
    b, i, d = load("mnist-binary"), load("mnist-int"), load("mnist")
    assert i.event_shape == (1, 28, 28) and i.train.dtype == torch.long and int(i.train.max()) == 255
    assert [len(i.split(s)) for s in ("train", "val", "test")] == [4000, 500, 500]
    for split in ("train", "val", "test"):
        assert torch.equal((i.split(split) >= 128).float(), b.split(split))
        assert torch.equal(torch.floor(d.split(split) * 256).long(), i.split(split))
        counts = torch.bincount(i.labels[split], minlength=10)
        assert torch.equal(counts, torch.full((10,), len(i.split(split)) // 10))  # stratified: 10% per class
    assert d.dequantized and d.levels == 256 and b.levels == 2 and float(d.train.max()) < 1
    rows = {tuple(x.flatten().tolist()) for s in ("train", "val", "test") for x in i.split(s)}
    assert len(rows) == 5000  # no digit in two parts
    assert not torch.equal(load("mnist", seed=1).train, d.train) and torch.equal(
        load("mnist", seed=1).labels["train"], d.labels["train"]
    )


def test_patches_are_mean_free_dequantized_grey_patches_of_the_photographs():
    from pyrogen.data.images import _grey_photographs

    p = load("patches")
    assert p.event_shape == (63,) and p.support == "real" and p.kind == "vector"
    assert [len(p.split(s)) for s in ("train", "val", "test")] == [30_000, 5_000, 5_000]
    for split in ("train", "val", "test"):
        x = p.split(split).double()
        full = torch.cat([x, -x.sum(1, keepdim=True)], 1)  # the dropped pixel: minus the sum of the others
        assert full.abs().max() < 1 and float(full.std()) > 0.03
    # an independent check of the construction: a patch whose top-left corner is found in a photograph by brute
    # force is that photograph's grey levels, mean removed, up to the dequantization noise (less than 1/256)
    photo = torch.as_tensor(_grey_photographs()[0])
    x = p.train[0].double()
    windows = photo.unfold(0, 8, 1).unfold(1, 8, 1).reshape(-1, 64) / 256.0
    centred = windows - windows.mean(1, keepdim=True)
    err = (centred[:, :63] - x).abs().amax(1)
    assert float(err.min()) < 1 / 256


def test_rgb_digits_are_the_binary_digits_in_one_colour_each():
    b, c = load("digits-binary"), load("digits-rgb")
    assert c.event_shape == (3, 8, 8) and c.support == "binary" and c.levels == 2
    for split in ("train", "val", "test"):
        x = c.split(split)
        assert torch.equal(x.amax(1, keepdim=True), b.split(split))  # strokes where the digit is
        lit = x.flatten(2).amax(2)  # (n, 3): the colour of each image
        assert torch.equal(x, b.split(split) * lit[:, :, None, None])  # every lit pixel has that colour
        counts = torch.unique(lit, dim=0, return_counts=True)[1]
        assert len(counts) == 7 and counts.min() > len(x) / 14  # all seven colours, none rare
    assert not torch.equal(load("digits-rgb", seed=1).train, c.train)


def test_text_corpus_is_bundled_and_split():
    text = load_corpus()
    assert len(text) == 304_450 and text.startswith("# ===== argparse.py")
    ds = load("text")
    assert ds.train.shape[1] == 128 and ds.levels == len(ds.vocab)
    decoded = "".join(ds.vocab[i] for i in ds.train[0].tolist())
    assert decoded == text[:128]


@pytest.mark.parametrize("bad", ["cifar10", "", "Moons", "MNIST", 3])
def test_unknown_dataset_names_raise(bad):
    with pytest.raises(ValueError, match="unknown dataset"):
        load(bad)


def test_every_dataset_loads():
    for name in DATASETS:
        ds = load(name)
        for split in ("train", "val", "test"):
            validate(ds.split(split), event_shape=ds.event_shape, support=ds.support, levels=ds.levels)


@pytest.mark.parametrize(
    ("x", "kwargs", "error", "match"),
    [
        (torch.tensor([[float("nan"), 0.0]]), {}, ValueError, "finite; found nan"),
        (torch.tensor([[float("inf"), 0.0]]), {}, ValueError, "finite; found inf"),
        (torch.zeros(0, 2), {}, ValueError, "empty"),
        (
            torch.zeros(3, 3),
            {"event_shape": (2,)},
            ValueError,
            r"shape \(batch, \*\(2,\)\); got \(3, 3\)",
        ),
        (torch.zeros(3, 2, dtype=torch.long), {}, TypeError, "floating dtype"),
        (np.zeros((3, 2)), {}, TypeError, "torch.Tensor; got ndarray"),
        (torch.tensor([[0.0, 0.3]]), {"support": "binary"}, ValueError, "only 0 and 1.*0.3"),
        (
            torch.tensor([[0, 17]]),
            {"support": "integer", "levels": 17},
            ValueError,
            r"0\.\.16; found 17",
        ),
        (
            torch.tensor([[0.5, 1.2]]),
            {"support": "unit_interval"},
            ValueError,
            r"\[0, 1\]; found 1.2",
        ),
    ],
)
def test_bad_data_raise_naming_the_problem(x, kwargs, error, match):
    with pytest.raises(error, match=match):
        validate(x, **kwargs)


def test_from_array_splits_by_the_seed_and_infers_the_support():
    from pyrogen.data import from_array

    x = torch.randn(200, 3)
    a, b, c = from_array(x, seed=1), from_array(x, seed=1), from_array(x, seed=2)
    assert torch.equal(a.train, b.train) and not torch.equal(a.train, c.train)
    assert sorted(torch.cat([a.train, a.val, a.test]).flatten().tolist()) == sorted(x.flatten().tolist())
    assert (len(a.train), len(a.val), len(a.test), a.support, a.kind) == (160, 20, 20, "real", "vector")
    binary = from_array(torch.bernoulli(torch.full((50, 1, 4, 4), 0.5)), labels=torch.arange(50) % 3)
    assert (binary.support, binary.kind, binary.levels) == ("binary", "image", 2)
    assert binary.labels["train"].dtype == torch.long and len(binary.labels["test"]) == 5
    ints = from_array(np.arange(30).reshape(10, 3) % 7)
    assert (ints.support, ints.levels, ints.train.dtype) == ("integer", 7, torch.long)


@pytest.mark.parametrize(
    ("x", "labels", "match"),
    [
        (torch.full((10, 2), float("nan")), None, "must be finite"),
        (torch.zeros(2, 2), None, "n >= 3"),
        (torch.zeros(10), None, "must be \\(n, D\\) vectors"),
        (np.array([[object()]] * 5), None, "object array"),
        ([[1.0, 2.0]], None, "tensor or a NumPy array"),
        (torch.zeros(10, 2), torch.zeros(9, dtype=torch.long), "labels must be 10 non-negative integers"),
    ],
)
def test_from_array_refuses_bad_data(x, labels, match):
    from pyrogen.data import from_array

    with pytest.raises((ValueError, TypeError), match=match):
        from_array(x, labels)


def test_every_file_type_loads_the_same_examples(tmp_path):
    from safetensors.numpy import save_file

    from pyrogen.data import load

    x = np.random.RandomState(0).randn(40, 2).astype(np.float32)
    y = np.arange(40) % 2
    np.save(tmp_path / "a.npy", x)
    np.savez(tmp_path / "b.npz", x=x, y=y)
    np.savetxt(tmp_path / "c.csv", x, delimiter=",", header="u,v", comments="")
    save_file({"x": x, "y": y}, str(tmp_path / "d.safetensors"))
    sets = [load(str(tmp_path / f), seed=3) for f in ("a.npy", "b.npz", "c.csv", "d.safetensors")]
    for ds in sets[1:]:
        torch.testing.assert_close(ds.train, sets[0].train)
    assert not sets[0].labels and torch.equal(sets[1].labels["train"], sets[3].labels["train"])
    np.save(tmp_path / "p.npy", np.array([{"a": 1}] * 3, dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match="cannot be read"):  # a pickle is never loaded
        load(str(tmp_path / "p.npy"))
    (tmp_path / "e.csv").write_text("1,2\n3,x\n")
    with pytest.raises(ValueError, match="e.csv' cannot be read"):
        load(str(tmp_path / "e.csv"))


def test_the_cli_trains_and_evaluates_on_a_users_file(tmp_path, capsys):
    import json

    from pyrogen.cli import main

    g = np.random.RandomState(0)
    angle = g.uniform(0, 2 * np.pi, 3000)
    ring = np.c_[2 * np.cos(angle), 2 * np.sin(angle)] + 0.1 * g.randn(3000, 2)
    np.save(tmp_path / "ring.npy", ring.astype(np.float32))
    run = tmp_path / "run"
    args = ["train", "realnvp", "--data", str(tmp_path / "ring.npy"), "--steps", "30", "--out", str(run), "-q"]
    assert main(args) == 0
    m = json.loads(capsys.readouterr().out)
    assert m["data"] == str((tmp_path / "ring.npy").resolve()) and m["n"] == 300
    assert {"nll_nats", "mmd", "c2st"} <= set(m)


def test_from_array_refuses_what_would_fail_later_and_names_why():
    from pyrogen.data import MAX_LEVELS, from_array

    ten = from_array(torch.randn(10, 2))  # every part has the two examples evaluation needs
    assert (len(ten.train), len(ten.val), len(ten.test)) == (6, 2, 2)
    with pytest.raises(ValueError, match="5 examples split into 1 for training, 2 for validation and 2 for testing"):
        from_array(torch.randn(5, 2))
    with pytest.raises(ValueError, match="seed must be an integer in \\[0, 2\\*\\*32\\); got 'a'"):
        from_array(torch.randn(10, 2), seed="a")
    with pytest.raises(ValueError, match=f"at most {MAX_LEVELS} levels"):
        from_array(torch.tensor([[0, 10**12]] * 10))
    assert from_array(torch.tensor([[0, MAX_LEVELS - 1]] * 10)).levels == MAX_LEVELS
    with pytest.raises(TypeError, match="got dtype complex128"):
        from_array(np.ones((10, 2)) + 1j)


def test_vector_quality_leaves_c2st_out_below_ten_examples():
    from pyrogen import quality

    few = quality.compare(torch.randn(8, 2), torch.randn(8, 2), "vector", "real", "mine")
    assert "c2st" not in few and "mmd" in few
    assert "c2st" in quality.compare(torch.randn(10, 2), torch.randn(10, 2), "vector", "real", "mine")


def test_a_file_with_fixed_parts_keeps_them(tmp_path):
    # before: --data FILE always split 80 / 10 / 10 at random, so a fixed test set could not be given
    from safetensors.numpy import save_file

    from pyrogen.data import load

    rng = np.random.default_rng(0)
    parts = {k: rng.normal(size=(n, 3)).astype(np.float32) for k, n in (("train", 20), ("val", 4), ("test", 6))}
    labels = {f"y_{k}": np.arange(len(v)) % 2 for k, v in parts.items()}
    np.savez(tmp_path / "fixed.npz", **parts, **labels)
    save_file(parts, str(tmp_path / "fixed.safetensors"))
    for f in ("fixed.npz", "fixed.safetensors"):
        d = load(str(tmp_path / f), seed=3)  # the seed does not move fixed parts
        for k, v in parts.items():
            np.testing.assert_array_equal(d.split(k).numpy(), v)
    assert load(str(tmp_path / "fixed.npz")).labels["test"].tolist() == [0, 1, 0, 1, 0, 1]
    np.savez(tmp_path / "half.npz", **parts, y_train=labels["y_train"])
    with pytest.raises(ValueError, match="labels for some parts only"):
        load(str(tmp_path / "half.npz"))
    np.savez(tmp_path / "tiny.npz", train=parts["train"], val=parts["val"][:1], test=parts["test"])
    with pytest.raises(ValueError, match="sizes must be three parts of at least 2 examples"):
        load(str(tmp_path / "tiny.npz"))


def test_moving_digits_move_one_pixel_a_frame_bounce_at_the_walls_and_show_their_own_part_s_digits():
    ds = load("moving-digits")
    digits = load("digits-binary")
    assert ds.kind == "sequence" and ds.event_shape == (16, 1, 16, 16) and ds.support == "binary"
    for split in ("train", "val", "test"):
        frames, where = ds.split(split), ds.positions[split]
        assert len(frames) == len(digits.split(split)) == len(where)
        assert int(where.min()) == 0 and int(where.max()) == 8
        steps = where[:, 1:] - where[:, :-1]
        assert bool((steps.abs() == 1).all())  # one pixel a frame along each axis
        turned = steps[:, 1:] != steps[:, :-1]  # a velocity reverses only at a wall
        at_wall = (where[:, 1:-1] == 0) | (where[:, 1:-1] == 8)
        assert bool((~turned | at_wall).all()) and bool(turned.any())
        for i in (0, len(frames) - 1):  # the frame is the part's digit at that place, and nothing else
            for t in (0, 7, 15):
                r, c = where[i, t].tolist()
                assert torch.equal(frames[i, t, 0, r : r + 8, c : c + 8], digits.split(split)[i, 0])
                assert frames[i, t].sum() == frames[i, t, 0, r : r + 8, c : c + 8].sum()
        assert torch.equal(ds.labels[split], digits.labels[split])
    assert not torch.equal(load("moving-digits", seed=1).positions["test"], ds.positions["test"])


def test_spoken_digits_are_standardized_log_mel_frames_with_every_word_and_no_speaker_in_two_parts():
    from pyrogen.data.speech import BANDS, FRAMES, load_spoken_digits, log_mel, mel_filters

    ds = load("spoken-digits")
    assert ds.kind == "sequence" and ds.event_shape == (FRAMES, BANDS) and ds.support == "real"
    assert torch.allclose(ds.train.mean((0, 1)), torch.zeros(BANDS), atol=1e-4)
    assert torch.allclose(ds.train.std((0, 1)), torch.ones(BANDS), atol=1e-3)
    raw = load_spoken_digits()
    speakers = [set(raw["speaker"][raw["part"] == i].tolist()) for i in range(3)]
    assert not (speakers[0] & speakers[1] or speakers[0] & speakers[2] or speakers[1] & speakers[2])
    for split in ("train", "val", "test"):
        assert torch.equal(torch.bincount(ds.labels[split], minlength=10).bool(), torch.ones(10, dtype=torch.bool))
        assert len(ds.split(split)) == len(ds.labels[split])
    # the filters: triangles on the mel scale, adjacent ones summing to 1 between the first and last centres
    filters = mel_filters()
    peaks = np.argmax(filters, 1)
    assert filters.shape == (BANDS, 129) and bool((np.diff(peaks) > 0).all())
    assert np.allclose(filters[:, peaks[0] + 1 : peaks[-1]].sum(0), 1.0, atol=1e-6)
    # a pure tone's power lands in the band around its frequency
    t = np.arange(8000) / 8000
    band = int(np.argmax(log_mel(0.5 * np.sin(2 * np.pi * 1000 * t)).mean(0)))
    centres = np.argmax(filters, 1) * 4000 / 128
    assert abs(centres[band] - 1000) == min(abs(centres - 1000))
