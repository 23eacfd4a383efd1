"""Weight trajectories (report.plots.plot_weight_trajectories, drawn by DoReMi's and Aioli's report
sections): one panel per history, each domain's line labelled at the right at the height it names,
labels moved apart (spread_labels) where they would overlap."""

import itertools
import random
import struct
import warnings

import pytest

from mixtune.mixing.iterated_doremi import RoundRecord, plot_trajectory, spread_labels
from mixtune.report.plots import plot_weight_trajectories

DOMAINS = ["web", "code", "books", "wiki", "papers"]


def _history(steps: int, seed: int, domains=DOMAINS) -> dict[int, dict[str, float]]:
    rng = random.Random(seed)
    weights, out = dict.fromkeys(domains, 1 / len(domains)), {}
    for step in range(0, 10 * steps, 10):
        weights = {d: max(1e-3, w + rng.uniform(-0.01, 0.01)) for d, w in weights.items()}
        total = sum(weights.values())
        out[step] = {d: w / total for d, w in weights.items()}
    return out


def _png_size(path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n", path
    return struct.unpack(">II", head[16:24])


@pytest.mark.parametrize("panels", [1, 3])
def test_a_png_for_one_and_for_three_panels(tmp_path, panels):
    path = tmp_path / "trajectory.png"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # constrained_layout's "axes sizes collapsed" included
        plot_weight_trajectories([(f"round {i + 1}", _history(30, i)) for i in range(panels)], path)
    width, height = _png_size(path)
    assert width > height > 200
    if panels == 3:  # side by side
        assert width > 2.5 * height


def test_labels_sit_at_their_lines_and_never_overlap(tmp_path, monkeypatch):
    """Five domains ending at one value: five labels, apart, centred on the value they name."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.text import Text

    import mixtune.mixing.iterated_doremi as doremi

    figures = []
    real = doremi.write_figure
    monkeypatch.setattr(doremi, "write_figure", lambda fig, path: (figures.append(fig), real(fig, path)))
    history = {s: {d: 0.2 + (s / 1000 if s < 90 else 0) * (i - 2) for i, d in enumerate(DOMAINS)}
               for s in range(0, 100, 10)}
    plot_weight_trajectories([("tie", history), ("spread", _history(10, 1))], tmp_path / "t.png")
    (fig,) = figures
    ax = fig.axes[0]
    assert sorted(t.get_text() for t in ax.texts) == sorted(f"{d} 0.200" for d in DOMAINS)
    renderer = FigureCanvasAgg(fig).get_renderer()
    fig.draw_without_rendering()  # laid out as it was saved
    boxes = sorted((Text.get_window_extent(t, renderer) for t in ax.texts), key=lambda b: b.y0)
    for low, high in itertools.pairwise(boxes):
        assert high.y0 >= low.y1 - 0.5  # no overlap
    line_end = ax.transData.transform((0, 0.2))[1]
    assert abs((boxes[0].y0 + boxes[-1].y1) / 2 - line_end) < 2  # centred on their value
    assert all(t.xy == (1.0, 0.2) for t in ax.texts)  # each joined to the line's end


def test_doremi_trajectory_labels_its_results(tmp_path):
    rounds = [RoundRecord(1, doremi_weights={d: 0.2 for d in DOMAINS}, proxy_run="round-1/proxy"),
              RoundRecord(2, proxy_run="round-2/proxy")]
    path = tmp_path / "trajectory.png"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        plot_trajectory(rounds, [_history(20, 0), {}], path)
    assert _png_size(path)[0] > 0


# -- spread_labels --------------------------------------------------------------------------------

def _cost(targets, placed):
    return sum((p - t) ** 2 for p, t in zip(targets, placed, strict=True))


def _check(targets, placed, gap):
    order = sorted(range(len(targets)), key=lambda i: targets[i])
    ys = [placed[i] for i in order]
    assert all(b - a >= gap - 1e-9 for a, b in itertools.pairwise(ys)), (targets, placed)


def test_labels_far_apart_stay_where_they_are():
    assert spread_labels([0.0, 5.0, 2.0], 1.0) == [0.0, 5.0, 2.0]


def test_close_labels_move_apart_symmetrically():
    assert spread_labels([0.0, 0.0], 1.0) == pytest.approx([-0.5, 0.5])
    assert spread_labels([0.2, 0.0, 9.0], 1.0) == pytest.approx([0.6, -0.4, 9.0])
    # A chain: a third label close to the pushed-up second joins the block.
    assert spread_labels([0.0, 0.5, 1.2], 1.0) == pytest.approx([-0.4333333, 0.5666667, 1.5666667])


def test_ties_keep_the_order_given():
    placed = spread_labels([1.0, 1.0, 1.0], 0.5)
    assert placed == pytest.approx([0.5, 1.0, 1.5])


def test_bounds_keep_labels_inside_when_they_fit():
    placed = spread_labels([0.0, 0.1, 0.2], 1.0, lo=0.0, hi=10.0)
    assert placed == pytest.approx([0.0, 1.0, 2.0])
    placed = spread_labels([10.0, 9.9], 1.0, lo=0.0, hi=10.0)
    assert placed == pytest.approx([10.0, 9.0])
    placed = spread_labels([5.0] * 4, 1.0, lo=0.0, hi=2.0)  # cannot fit: centred on the range
    assert placed == pytest.approx([-0.5, 0.5, 1.5, 2.5])


def test_spread_labels_is_the_closest_placement_with_the_gap():
    """Against a general solver: the least sum of squared moves under the gap, in every case."""
    optimize = pytest.importorskip("scipy.optimize")
    import numpy as np

    rng = random.Random(0)
    for _ in range(40):
        n, gap = rng.randint(1, 7), rng.uniform(0.1, 1.0)
        targets = [round(rng.uniform(0, 3), 2) for _ in range(n)]
        lo, hi = (None, None) if rng.random() < 0.5 else (0.2, 3.0 + n * gap)
        placed = spread_labels(targets, gap, lo, hi)
        _check(targets, placed, gap)
        if lo is not None:
            assert min(placed) >= lo - 1e-9 and max(placed) <= hi + 1e-9
        order = sorted(range(n), key=lambda i: targets[i])
        cons = [{"type": "ineq", "fun": lambda y, a=a, b=b, g=gap: y[b] - y[a] - g}
                for a, b in itertools.pairwise(order)]
        bounds = None if lo is None else [(lo, hi)] * n
        goal = np.array(targets)
        best = optimize.minimize(lambda y, t=goal: float(np.sum((y - t) ** 2)),
                                 np.array(placed) + 0.01, constraints=cons, bounds=bounds,
                                 method="SLSQP")
        assert _cost(targets, placed) <= best.fun + 1e-6, (targets, gap, placed, best.x)
