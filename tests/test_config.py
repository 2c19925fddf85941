"""The configs: each range rule and choice list is written once and refused with one message,
whether the value comes from Python or from the command line."""

from __future__ import annotations

import math
import re

import click
import pytest
from click.testing import CliRunner

from nst.cli.options import choice, ranged
from nst.errors import ConfigError
from nst.runtime.config import RULES, OptimizerName, PrecomputeConfig, Rule, StylizeConfig, choices


@pytest.mark.parametrize(
    "options, message",
    [
        ({"iterations": 0}, "--iterations must be between 1 and 1000000, got 0"),
        ({"content_weight_blend": 1.5}, "--content-weight-blend must be between 0 and 1, got 1.5"),
        ({"style_blend_weights": (0.0, 0.0)}, "--style-blend-weights must have a positive sum, got (0.0, 0.0)"),
        ({"style_blend_weights": (1.0, -1.0)}, "--style-blend-weights must be between 0 and 1e+15, got (1.0, -1.0)"),
        ({"optimizer": "sgd"}, "--optimizer must be one of adam, lbfgs, got 'sgd'"),
        ({"preserve_colors": "hue"}, "--preserve-colors must be one of luminance, histogram, got 'hue'"),
        ({"device": "tpu"}, "--device must be auto, cpu, cuda or cuda:N, got 'tpu'"),
        ({"content_weight": math.inf}, "--content-weight must be between 0 and 1e+15, got inf"),
        ({"style_weight": math.nan}, "--style-weight must be between 0 and 1e+15, got nan"),
        ({"content_weight": 1e39}, "--content-weight must be between 0 and 1e+15, got 1e+39"),
        ({"beta1": 1.0}, "--beta1 must be in [0, 1), got 1.0"),
        ({"learning_rate": 0.0}, "--learning-rate must be in (0, 1e+06], got 0.0"),
        ({"seed": 2**64}, "--seed must be between 0 and 18446744073709551615, got 18446744073709551616"),
        ({"seed": -1}, "--seed must be between 0 and 18446744073709551615, got -1"),
    ],
)
def test_bad_stylize_values(options, message):
    with pytest.raises(ConfigError, match=f"^{re.escape(message)}$"):
        StylizeConfig(**options)


def test_extreme_valid_values_are_accepted():
    StylizeConfig(seed=2**64 - 1, content_weight=0, beta1=0, device="cuda:1")
    PrecomputeConfig(size=16, batch_size=1024)


def test_rules_describe_themselves():
    assert Rule(0, 1).describe() == "must be between 0 and 1"
    assert Rule(0, None, min_open=True).describe() == "must be positive"
    assert Rule(1).describe() == "must be at least 1"
    assert not Rule(0, 1).accepts(math.inf) and not Rule().accepts(math.nan) and Rule().accepts(-5)


def test_click_types_come_from_the_same_rules_and_aliases():
    @click.command()
    @click.option("--content-weight", type=ranged("content_weight"))
    @click.option("--iterations", type=ranged("iterations", int))
    @click.option("--optimizer", type=choice(OptimizerName))
    def command(**_):
        pass

    runner = CliRunner()
    for argv, message in (
        (["--content-weight", "inf"], RULES["content_weight"].describe()),
        (["--content-weight", "1e39"], RULES["content_weight"].describe()),
        (["--iterations", "0"], RULES["iterations"].describe()),
        (["--iterations", "1.5"], "is not an integer"),
        (["--optimizer", "sgd"], "'sgd' is not one of 'adam', 'lbfgs'"),
    ):
        result = runner.invoke(command, argv)
        assert result.exit_code == 2 and message in result.output, (argv, result.output)
    assert runner.invoke(command, ["--content-weight", "5", "--iterations", "3", "--optimizer", "adam"]).exit_code == 0
    assert choices(OptimizerName) == ("adam", "lbfgs")
