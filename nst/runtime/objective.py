"""The stylize objective: small terms that share one forward pass of the network.

Each term names the layers it needs and turns their features (and the image) into its
weighted loss. `Objective` runs the network once per evaluation, stopping at the deepest
layer any term needs, and reports every term's value, so a new term (a style term
restricted to a region, a temporal term against a warped previous frame) plugs in without
touching the optimiser loop:

    total = content_weight * sum_l blend_l * content_loss(F_l, P_l)
          + style_weight * sum_i blend_i * sum_l w_l * style_loss(G_l, A_il)
          + tv_weight * tv_loss(image)
          + any extra term
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import torch

from nst.models.layers import CONTENT_LAYERS, STYLE_LAYERS
from nst.runtime.config import StylizeConfig
from nst.runtime.guides import RegionStyleTerm, StageGuides
from nst.runtime.loss_scale import resolve_loss_scale
from nst.runtime.losses import content_loss, gram, style_layer_weights, style_loss, tv_loss
from nst.runtime.mirror import VGGMirror

Features = Mapping[str, torch.Tensor]
# One style's Grams, by layer: (1, C, C) each.
StyleGrams = Mapping[str, torch.Tensor]


class Term(Protocol):
    """One weighted term of the objective. An extra term may also have a `key() -> str` method, a
    digest of what it holds, so that a resumed run can tell it is the same (`term_key`)."""

    @property
    def name(self) -> str:
        """Its key in the reported values: content, style, tv, ..."""
        ...

    @property
    def layers(self) -> tuple[str, ...]:
        """The layers whose features the term reads (none: it reads only the image)."""
        ...

    def __call__(self, image: torch.Tensor, features: Features) -> torch.Tensor:
        """The weighted loss (a scalar tensor) of `image` (1, 3, H, W), given its features."""
        ...


def term_key(term: Term) -> str:
    """An extra term's identity, for resumed runs: `name:key()` when the term has a `key()` method
    (a digest of what it holds: targets, masks, weights), else its name alone, which a resumed run
    then takes on trust."""
    key = getattr(term, "key", None)
    return f"{term.name}:{key()}" if callable(key) else term.name


def tensor_key(*tensors: torch.Tensor) -> str:
    """A digest of tensors' float32 values and shapes (for `Term.key`s and start images)."""
    digest = hashlib.sha256()
    for tensor in tensors:
        array = tensor.detach().float().cpu().contiguous().numpy()
        digest.update(repr(array.shape).encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


@dataclass(frozen=True)
class ContentTerm:
    """content_weight * sum_l blend_l * mean(m_l (F_l - P_l)^2), P_l the content's features and
    m_l the content mask carried to layer l (none: 1 everywhere)."""

    targets: Features  # layer -> the content image's features (1, C, h, w), float32
    weights: Mapping[str, float]  # layer -> content_weight * its blend share
    masks: Mapping[str, torch.Tensor] | None = None  # layer -> (1, 1, h, w): where the content counts
    name: str = "content"

    @property
    def layers(self) -> tuple[str, ...]:
        return tuple(self.weights)

    def __call__(self, image: torch.Tensor, features: Features) -> torch.Tensor:
        loss = image.new_zeros(())
        for layer, weight in self.weights.items():
            if self.masks is None:
                loss = loss + weight * content_loss(features[layer].float(), self.targets[layer])
            else:
                squares = (features[layer].float() - self.targets[layer]).pow(2) * self.masks[layer]
                loss = loss + weight * squares.mean()
        return loss


@dataclass(frozen=True)
class StyleTerm:
    """style_weight * sum_i blend_i * sum_l w_l * n_il * mean((G_l - A_il)^2), over the styles i.
    n_il is 1 (the reference's scale) or 1 / mean(A_il^2) (`norms`, the balanced scale)."""

    targets: Sequence[StyleGrams]  # per style image
    blend: Sequence[float]  # per style, summing to 1
    layer_weights: Mapping[str, float]  # layer -> w_l, summing to 1
    weight: float
    norms: Sequence[Mapping[str, float]] | None = None  # per style, layer -> n_il
    name: str = "style"

    @property
    def layers(self) -> tuple[str, ...]:
        return tuple(self.layer_weights) if self.weight > 0 and self.targets else ()

    def __call__(self, image: torch.Tensor, features: Features) -> torch.Tensor:
        loss = image.new_zeros(())
        for layer in self.layers:
            g = gram(features[layer])  # (1, C, C), float32 whatever the convolutions ran in
            per_style = sum(
                b * style_loss(g, grams[layer]) * (self.norms[i][layer] if self.norms else 1.0)
                for i, (b, grams) in enumerate(zip(self.blend, self.targets))
                if b > 0
            )
            loss = loss + self.layer_weights[layer] * per_style
        return self.weight * loss


@dataclass(frozen=True)
class TVTerm:
    """tv_weight * total variation of the image (the reference's denoiser)."""

    weight: float
    name: str = "tv"
    layers: tuple[str, ...] = ()

    def __call__(self, image: torch.Tensor, features: Features) -> torch.Tensor:
        return self.weight * tv_loss(image)


class Objective:
    """objective(image) -> (total, {term name: value}): one forward pass, every term."""

    def __init__(
        self,
        model: VGGMirror,
        terms: Sequence[Term],
        *,
        precision: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext,
        channels_last: bool = False,
        checkpoint: bool = False,
    ):
        names = [term.name for term in terms]
        if len(set(names)) != len(names):
            raise ValueError(f"objective terms need distinct names, got {names}")
        self.model, self.terms = model, tuple(terms)
        wanted = {layer for term in terms for layer in term.layers}
        self.layers = tuple(layer.name for layer in model.table if layer.name in wanted)  # network order
        self.precision, self.channels_last, self.checkpoint = precision, channels_last, checkpoint

    def __call__(self, image: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        return self.evaluate(image, self.features(image))

    def features(self, image: torch.Tensor) -> Features:
        """The one forward pass: every layer a term needs, in the run's precision and layout."""
        if not self.layers:
            return {}
        x = image.contiguous(memory_format=torch.channels_last) if self.channels_last else image
        with self.precision():
            return self.model(x, layers=self.layers, checkpoint=self.checkpoint)

    def evaluate(self, image: torch.Tensor, features: Features) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """(total, {term name: value}) of `image` given its `features`."""
        values = [term(image, features) for term in self.terms]
        total = values[0]
        for value in values[1:]:
            total = total + value
        return total, {term.name: value.detach() for term, value in zip(self.terms, values)}


def content_weights(config: StylizeConfig) -> dict[str, float]:
    """relu4_2 gets content_weight * blend, relu5_2 the rest; zero weights are left out."""
    weight = config.resolved().content_weight or 0.0
    shares = (config.content_weight_blend, 1 - config.content_weight_blend)
    return {layer: weight * share for layer, share in zip(CONTENT_LAYERS, shares) if weight * share > 0}


def content_term(
    model: VGGMirror,
    content: torch.Tensor,
    config: StylizeConfig,
    *,
    precision: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext,
    channels_last: bool = False,
    masks: Mapping[str, torch.Tensor] | None = None,
) -> ContentTerm:
    """The content term of `content` (1, 3, H, W): its features, computed once, in the
    precision and layout the loop's features will have (kept as float32).
    Under the balanced scale each layer's weight is divided by mean(P^2) of its target."""
    weights = content_weights(config)
    x = content.contiguous(memory_format=torch.channels_last) if channels_last else content
    with torch.no_grad(), precision():
        found = model(x, layers=tuple(weights)) if weights else {}
    targets = {layer: value.float() for layer, value in found.items()}
    if config.loss_scale == "balanced":
        weights = {layer: w / _mean_square(targets[layer]) for layer, w in weights.items()}
    return ContentTerm(targets=targets, weights=weights, masks=masks)


def objective_terms(
    model: VGGMirror,
    content: torch.Tensor,
    style_grams: Sequence[StyleGrams],
    blend: Sequence[float],
    config: StylizeConfig,
    *,
    precision: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext,
    channels_last: bool = False,
    guides: StageGuides | None = None,
) -> list[Term]:
    """The objective's three terms, on the config's loss scale (`precision` and
    `channels_last`: the loop's, in which the content's features are computed). With
    `guides`, each style applies in its region (a `RegionStyleTerm`: `style_grams` are then
    per region, `blend` unused) and the content where its mask says.

    reference: anishathalye/neural-style's normalizations, so that its tuned weights carry over.
    balanced: each term relative to its own target, per layer (content / mean(P^2), style /
    mean(A^2), TV / the content image's TV), so that neither the activations' scale (other
    weights, VGG-16 against VGG-19) nor the image size moves the balance between them.
    """
    if config.loss_scale == "auto":  # by the model's weights; a model without metadata cannot say
        if getattr(model, "info", None) is None:
            raise ValueError("loss_scale 'auto' needs a model with nst metadata; pass reference or balanced")
        config = resolve_loss_scale(config, model.info)
    config = config.resolved()
    balanced = config.loss_scale == "balanced"
    norms = [{layer: 1.0 / _mean_square(g[layer]) for layer in g} for g in style_grams] if balanced else None
    tv_weight = config.tv_weight or 0.0
    if balanced:
        tv_weight /= max(float(tv_loss(content)), 1.0)  # a flat content would divide by ~0
    masks = guides.content if guides is not None else None
    layer_weights = style_layer_weights(STYLE_LAYERS, config.style_layer_weight_exp)
    weight = config.style_weight or 0.0
    style: Term = (
        RegionStyleTerm(
            targets=style_grams, guides=guides.styles, layer_weights=layer_weights, weight=weight, norms=norms
        )
        if guides is not None and guides.styles is not None
        else StyleTerm(targets=style_grams, blend=blend, weight=weight, layer_weights=layer_weights, norms=norms)
    )
    return [
        content_term(model, content, config, precision=precision, channels_last=channels_last, masks=masks),
        style,
        TVTerm(weight=tv_weight),
    ]


def _mean_square(target: torch.Tensor) -> float:
    return max(float(target.float().pow(2).mean()), 1e-30)
