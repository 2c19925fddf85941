"""The plan of one run: the start image, the content size and the coarse-to-fine stages."""

from __future__ import annotations

import torch

from nst.runtime.images import resized_shape
from nst.runtime.plan import Stage, initial_image, plan_stages, stage_sizes


def test_initial_image_follows_the_reference():
    content = torch.full((1, 3, 2, 2), 100.0)
    start = torch.full((1, 3, 2, 2), 200.0)
    mean = torch.tensor([120.0, 110.0, 100.0]).reshape(1, 3, 1, 1)
    gen = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    noise = torch.randn((1, 3, 2, 2), generator=gen()) * 0.256
    # no --initial: pure noise around the mean pixel
    assert torch.allclose(initial_image(content, None, noiseblend=None, mean_pixel=mean, generator=gen()), mean + noise)
    # --initial alone: exactly that image
    assert torch.equal(initial_image(content, start, noiseblend=None, mean_pixel=mean, generator=gen()), start)
    # a noise blend mixes in mean-subtracted space
    assert torch.allclose(
        initial_image(content, start, noiseblend=0.25, mean_pixel=mean, generator=gen()),
        (start - mean) * 0.75 + noise * 0.25 + mean,
    )
    assert torch.allclose(
        initial_image(content, None, noiseblend=0.5, mean_pixel=mean, generator=gen()),
        (content - mean) * 0.5 + noise * 0.5 + mean,
    )


def test_stage_sizes():
    # (height, width) in and out
    assert stage_sizes((300, 400), 1, 128) == [(300, 400)]
    assert stage_sizes((256, 512), 3, 128) == [(64, 128), (128, 256), (256, 512)]
    assert stage_sizes((256, 512), 0, 128) == [(64, 128), (128, 256), (256, 512)]  # one per octave
    assert stage_sizes((80, 100), 3, 128) == [(80, 100)]  # already small


def test_plan_splits_iterations_and_skips_empty_stages():
    assert plan_stages((256, 512), 10, 3, 128) == [
        Stage(0, (64, 128), 3, 1),
        Stage(1, (128, 256), 3, 4),
        Stage(2, (256, 512), 4, 7),
    ]
    # Fewer iterations than stages: the coarse stages get none and are left out.
    assert plan_stages((256, 512), 2, 3, 128) == [Stage(2, (256, 512), 2, 1)]


def test_content_size_policy():
    # The long side to --size (up or down), the width to --width (which wins), or as it is.
    assert resized_shape((3024, 4032), long_side=512, width=None) == (384, 512)
    assert resized_shape((300, 200), long_side=512, width=None) == (512, 341)
    assert resized_shape((3024, 4032), long_side=512, width=100) == (75, 100)
    assert resized_shape((3024, 4032), long_side=0, width=None) == (3024, 4032)
