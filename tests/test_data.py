import torch

from frdiff.glyphs.data import FONT_FILES, GLYPH_CLASSES, GlyphStream, glyph_masks, sample_glyphs


def test_same_seed_same_images():
    a, la = sample_glyphs(16, torch.Generator().manual_seed(3))
    b, lb = sample_glyphs(16, torch.Generator().manual_seed(3))
    assert torch.equal(a, b) and torch.equal(la, lb)


def test_different_seed_different_images():
    a, _ = sample_glyphs(16, torch.Generator().manual_seed(3))
    b, _ = sample_glyphs(16, torch.Generator().manual_seed(4))
    assert not torch.equal(a, b)


def test_shapes_range_and_fixed_labels():
    labels = torch.arange(len(GLYPH_CLASSES))
    images, out = sample_glyphs(len(labels), torch.Generator().manual_seed(0), labels=labels)
    assert images.shape == (len(GLYPH_CLASSES), 3, 32, 32)
    assert images.min() >= -1 and images.max() <= 1
    assert torch.equal(out, labels)
    # every image has a glyph: a clear spread of values, not a flat background
    assert (images.flatten(1).std(1) > 0.05).all()


def test_every_font_renders_every_class():
    masks = glyph_masks()
    assert masks.shape[:2] == (len(FONT_FILES), len(GLYPH_CLASSES))
    coverage = masks.flatten(2).mean(2)
    assert (coverage > 0.02).all(), "an empty glyph mask"
    # no two classes share a mask in any font (catches fallback glyphs such as tofu boxes)
    for f in range(len(FONT_FILES)):
        flat = masks[f].flatten(1)
        dists = torch.cdist(flat, flat) + torch.eye(len(GLYPH_CLASSES)) * 1e9
        assert dists.min() > 1.0


def test_stream_resumes_exactly():
    s = GlyphStream(4, seed=7)
    next(s)
    state = s.state_dict()
    expected, _ = next(s)
    t = GlyphStream(4, seed=99)
    t.load_state_dict(state)
    got, _ = next(t)
    assert torch.equal(expected, got)
