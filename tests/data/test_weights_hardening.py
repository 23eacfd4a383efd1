"""Weights files that used to get a wrong message (issue 23, item 9b and 9c)."""

import json

import numpy as np
import pytest

from mixtune.data.weights import normalise, read_weights
from mixtune.errors import UserError


def test_huge_weights_are_normalised_not_called_zero(tmp_path):
    """Their sum overflows to inf; they are scaled by the largest first."""
    f = tmp_path / "w.json"
    f.write_text(json.dumps({"a": 1e308, "b": 1e308}))
    assert np.allclose(read_weights(f, ["a", "b"]), [0.5, 0.5])
    assert np.allclose(normalise(np.array([1e308, 0.0, 5e307]), "w"), [2 / 3, 0, 1 / 3])
    with pytest.raises(UserError, match="all weights are zero"):
        normalise(np.zeros(3), "w")
    with pytest.raises(UserError, match="all weights are zero"):
        normalise(np.zeros(0), "w")


@pytest.mark.parametrize("value", ["x", 3, [0.5, 0.5], None])
def test_a_doremi_layout_without_an_object_says_what_it_must_be(tmp_path, value):
    f = tmp_path / "w.json"
    f.write_text(json.dumps({"train_domain_weights": value}))
    with pytest.raises(UserError) as err:
        read_weights(f, ["a", "b"])
    assert str(err.value) == (f"weights file {f}: train_domain_weights is {value!r}; it must be "
                              "an object {domain: weight}.")
