"""Text-to-image latent diffusion: the captions against brute-force measurements, the text networks' masking,
the model's conditioning and guidance, and the CLI's --prompt."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from pyrogen.cli import main
from pyrogen.data import captions as C
from pyrogen.data import load
from pyrogen.inference import training_data
from pyrogen.models import registry
from pyrogen.nn import SpatialConvDecoder, SpatialConvEncoder, TextEncoder, TextUNet
from tests.conftest import SMALL, cli


def _brute_force(img: torch.Tensor) -> dict[str, float]:
    """The three attributes of one 8x8 image by explicit sums over its 64 pixels."""
    x = [[float(img[0, r, c]) for c in range(8)] for r in range(8)]
    x = [[v if v >= C.BACKGROUND else 0.0 for v in row] for row in x]
    ink = sum(map(sum, x))
    mr = sum(r * x[r][c] for r in range(8) for c in range(8)) / ink
    mc = sum(c * x[r][c] for r in range(8) for c in range(8)) / ink
    vr = sum((r - mr) ** 2 * x[r][c] for r in range(8) for c in range(8)) / ink
    vc = sum((c - mc) ** 2 * x[r][c] for r in range(8) for c in range(8)) / ink
    cov = sum((r - mr) * (c - mc) * x[r][c] for r in range(8) for c in range(8)) / ink
    return {"thickness": ink, "size": math.sqrt(vr + vc), "slant": -cov / vr}


def test_attributes_equal_brute_force_sums_and_slant_reads_a_sheared_bar():
    d = load("digits")
    got = C.measure(d.test[:5])
    for i in range(5):
        for a, v in _brute_force(d.test[i]).items():
            assert float(got[a][i]) == pytest.approx(v, rel=1e-12), (i, a)
    right, left = torch.zeros(1, 1, 8, 8), torch.zeros(1, 1, 8, 8)
    for r in range(8):  # a bar whose top is to the right of its bottom leans right
        right[0, 0, r, 7 - r // 2] = 1.0
        left[0, 0, r, r // 2] = 1.0
    assert float(C.measure(right)["slant"]) > 0 > float(C.measure(left)["slant"])
    # integer grey levels are read as level / 16
    ints = load("digits-int")
    torch.testing.assert_close(C.measure(ints.test[:3])["slant"], C.measure(ints.test[:3] / 16.0)["slant"])


def test_captions_name_the_thirds_of_each_class_and_parse_back():
    d = load("digits")
    words = C.attribute_words(d.train, d.labels["train"])
    for a, v in words.items():  # terciles of each class: about a third at each end
        shares = np.bincount(np.array(v) + 1, minlength=3) / len(v)
        assert np.all(np.abs(shares - 1 / 3) < 0.05), (a, shares)
    caps = C.captions(d.test[:50], d.labels["test"][:50])
    test_words = C.attribute_words(d.test[:50], d.labels["test"][:50])
    for i, cap in enumerate(caps):
        digit, asked = C.parse(cap)
        assert digit == int(d.labels["test"][i])
        assert asked == {a: w[i] for a, w in test_words.items() if w[i]}, cap
    ids = C.tokenize(caps)
    assert ids.shape == (50, C.MAX_TOKENS) and (ids[:, 0] == C.BOS).all()


@pytest.mark.parametrize(
    ("prompt", "message"),
    [
        ("a fat seven", "unknown word 'fat'"),
        ("a thick thin seven", "both 'thin' and 'thick'"),
        ("a one seven", "names 2 digits"),
        ("a thick large seven leaning right now", "unknown word 'now'"),
        ("a a a a a a a a seven", "at most 7 fit"),
        (7, "a prompt must be a string"),
    ],
)
def test_bad_prompts_are_one_clear_error(prompt, message):
    with pytest.raises(ValueError, match=message):
        C.parse(prompt)


def test_padding_does_not_change_what_the_text_networks_compute():
    torch.manual_seed(0)
    enc = TextEncoder(len(C.VOCAB), C.MAX_TOKENS, dim=16, heads=2, layers=2).eval()
    full = C.tokenize(["a thick seven"])  # padded to MAX_TOKENS
    short = full[:, :4]
    a, _ = enc(full)
    b, _ = enc(short)
    torch.testing.assert_close(a[:, :4], b, rtol=1e-5, atol=1e-6)
    net = TextUNet((1, 4, 4), len(C.VOCAB), C.MAX_TOKENS, features=8, emb_dim=16, text_dim=16, heads=2).eval()
    z, t = torch.randn(1, 1, 4, 4), torch.tensor([3.0])
    torch.testing.assert_close(net(z, t, full), net(z, t, short), rtol=1e-5, atol=1e-6)
    other = net(z, t, C.tokenize(["a thin one leaning left"]))
    assert (other - net(z, t, full)).abs().max() > 1e-4  # the caption reaches the output
    with pytest.raises(ValueError, match="starting with <bos>"):
        enc(torch.tensor([[2, 3]]))


def test_the_spatial_code_keeps_its_map_layout():
    enc = SpatialConvEncoder((1, 8, 8), 32, width=8)
    x = torch.rand(3, 1, 8, 8)
    out = enc(x)
    maps = enc.convs(x)  # (3, 2 * 2, 4, 4): the loc maps first
    torch.testing.assert_close(out[:, :32], maps[:, :2].flatten(1))
    assert SpatialConvDecoder(32, (1, 8, 8), out_mult=2, width=8)(out[:, :32]).shape == (3, 2, 1, 8, 8)
    with pytest.raises(ValueError, match="multiple of 16"):
        SpatialConvEncoder((1, 8, 8), 20)


def _small():
    torch.manual_seed(0)
    return registry.create("text-diffusion", **SMALL["text-diffusion"])


def test_the_model_conditions_on_captions_and_refuses_unknown_words():
    m = _small().eval()
    d = load("digits")
    x, tokens = training_data(m, d, "train")
    assert tokens.shape == (len(x), C.MAX_TOKENS)
    torch.testing.assert_close(tokens[:5], C.tokenize(C.captions(d.train[:5], d.labels["train"][:5])))
    z = torch.randn(2, *m.space_shape)
    c = m._c(torch.tensor([5, 5]))
    y = m._labels("a thick seven", 2)
    with torch.no_grad():
        guided = m._guided(z, c, y, 3.0, averaged=False)
        cond, uncond = m._net(z, c, y), m._net(z, c, None)
    torch.testing.assert_close(guided, 4 * cond - 3 * uncond)  # (1 + w) o(z, y) - w o(z, empty)
    s = m.sample(3, prompt=["a thin one", "a large two", "a seven leaning left"], sampler="ddim", steps=3, guidance=1)
    assert s.shape == (3, 1, 8, 8) and not s.requires_grad and torch.isfinite(s).all()
    with pytest.raises(ValueError, match="unknown word 'purple'"):
        m.sample(2, prompt="a purple seven")
    with pytest.raises(ValueError, match="give one prompt or 2 prompts"):
        m.sample(2, prompt=["a one", "a two", "a three"])
    with pytest.raises(ValueError, match="labelled 8x8 grey digits"):
        registry.from_dataset("text-diffusion", load("moons"))
    with pytest.raises(ValueError, match="event_shape must be"):
        registry.create("text-diffusion", event_shape=(1, 16, 16))


def test_dropping_a_caption_leaves_the_empty_one():
    m = _small().train()
    tokens = C.tokenize(["a thick seven"] * 2000)
    torch.manual_seed(0)
    dropped = m._drop_labels(tokens)
    empty = (dropped[:, 1:] == C.PAD).all(1) & (dropped[:, 0] == C.BOS)
    assert abs(float(empty.float().mean()) - m.p_uncond) < 0.02
    assert torch.equal(dropped[~empty], tokens[~empty])


@pytest.mark.slow
def test_prompt_through_the_cli(tmp_path, capsys):
    run = tmp_path / "t2i"
    sets = [f"--set={k}={v}" for k, v in SMALL["text-diffusion"].items() if k not in ("support",)]
    sets = [s.replace("(", "[").replace(")", "]").replace(",]", "]") for s in sets]
    assert main(["train", "text-diffusion", "--steps", "60", "--out", str(run), "-q", *sets]) == 0
    out = tmp_path / "s.png"
    args = ["sample", str(run), "-n", "4", "--out", str(out), "--prompt", "a thick seven", "--guidance", "2"]
    assert main([*args, "--sampler", "ddim", "--steps", "3"]) == 0 and out.stat().st_size > 0
    for extra, message in (
        (["--prompt", "a fat seven"], "unknown word 'fat'"),
        (["--guidance", "2"], "--guidance needs --prompt"),
        (["--label", "3"], "--label needs a class-conditional model"),
    ):
        code, err = cli(capsys, "sample", run, "-n", "2", "--out", tmp_path / "u.png", *extra)
        assert code != 0 and message in err and "Traceback" not in err, err
    assert not (tmp_path / "u.png").exists()
