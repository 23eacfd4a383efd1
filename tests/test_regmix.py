"""RegMix on a given swarm: reading M.csv/R.csv, targets, the two regressors and the search,
on planted swarms whose best mixture is known."""

import numpy as np
import pytest

from mixtune import regmix
from mixtune.errors import UserError

K = 5
T_PLANTED = np.array([-1.0, 0.5, 1.0, -0.5, 0.0])  # centred: mean 0
W_STAR = np.array([0.4, 0.3, 0.15, 0.1, 0.05])  # the quadratic swarm's best mixture


def _swarm_weights(n: int = 64) -> np.ndarray:
    return regmix.candidate_mixtures(K, None, n, seed=1)


def _loglinear_swarm(n: int = 64) -> tuple[np.ndarray, np.ndarray]:
    w = _swarm_weights(n)
    noise = np.random.default_rng(0).normal(0.0, 0.005, n)
    return w, 2.0 + 0.8 * np.exp(w @ T_PLANTED) + noise


def _quadratic_swarm(n: int = 64) -> tuple[np.ndarray, np.ndarray]:
    w = _swarm_weights(n)
    noise = np.random.default_rng(0).normal(0.0, 0.002, n)
    return w, ((w - W_STAR) ** 2).sum(axis=1) + noise


# ---- planted swarms ----------------------------------------------------------------------------


def test_loglinear_fit_recovers_the_planted_law():
    w, y = _loglinear_swarm()
    model = regmix.fit(w, y, "loglinear")
    np.testing.assert_allclose(model.t, T_PLANTED, atol=0.05)
    assert model.c == pytest.approx(2.0, abs=0.02) and model.k == pytest.approx(0.8, abs=0.02)
    assert regmix.cross_validated_rank_correlation(w, y, "loglinear") > 0.95


def test_loglinear_proposal_lands_on_the_planted_optimum():
    # exp(w . t) is smallest at the corner of the most negative t: domain 0.
    model = regmix.fit(*_loglinear_swarm(), "loglinear")
    mixture = regmix.propose(model, K, samples=20_000)
    assert mixture.dtype == np.float64 and mixture.sum() == pytest.approx(1.0, abs=1e-12)
    assert mixture[0] > 0.98


def test_a_target_over_several_domains_fits_one_law_per_domain():
    # Each domain's loss falls with its own weight (t_jj < 0): the average is a sum of
    # exponentials, lowest at an interior mixture that one law on the average cannot represent.
    w = _swarm_weights(80)
    laws = [(1.0 + j, 0.6, -3.0 * np.eye(K)[j]) for j in range(K)]
    parts = np.stack([c + k * np.exp(w @ t) for c, k, t in laws], axis=1)
    mix = np.full(K, 1.0 / K)
    model = regmix.fit_parts(w, parts, mix, "loglinear")
    assert isinstance(model, regmix.SumModel) and len(model.parts) == K
    probe = _swarm_weights(300)[200:]
    truth = np.stack([c + k * np.exp(probe @ t) for c, k, t in laws], axis=1) @ mix
    np.testing.assert_allclose(model.predict(probe), truth, atol=1e-3)
    one_law = regmix.fit(w, parts @ mix, "loglinear")
    assert np.abs(one_law.predict(probe) - truth).max() > 10 * np.abs(
        model.predict(probe) - truth).max()
    # The symmetric laws are lowest at uniform, and the proposal finds it.
    assert np.abs(regmix.propose(model, K, samples=20_000) - mix).max() < 0.05
    assert regmix.cross_validated_rank_correlation(w, parts, "loglinear", mix=mix) > 0.95
    # One measure, or LightGBM: the target itself is fitted.
    assert isinstance(regmix.fit_parts(w, parts, np.eye(K)[0], "loglinear"),
                      regmix.LogLinearModel)


def test_a_swarm_that_leaves_a_domain_open_is_not_extrapolated_wildly():
    # 4 runs for 3 domains (as many parameters as runs), web never above 3%: the law interpolates
    # these exactly with t_web ~ 375, and predicted 4e73 for the uniform mixture unbounded. Now
    # every mixture's prediction stays within the measured range widened by its width.
    w = np.array([[0.3209, 0.6472, 0.0319], [0.1289, 0.8711, 0.0], [0.0, 1.0, 0.0],
                  [0.9996, 0.0004, 0.0]])
    y = np.array([6.8508, 6.8398, 6.8476, 6.8917])
    model = regmix.fit(w, y, "loglinear")
    span = np.ptp(y)
    assert (model.low, model.high) == pytest.approx((y.min() - span, y.max() + span))
    probe = np.vstack([np.full(3, 1 / 3), np.eye(3)])
    assert np.all(np.abs(model.predict(probe) - y.mean()) < 2 * span)
    assert np.abs(model.predict(w) - y).max() < span / 4  # still fits what it saw


def test_a_flat_law_predicts_its_constant_far_outside_the_swarm():
    model = regmix.LogLinearModel(c=2.0, k=0.0, t=np.array([900.0, -900.0]))
    np.testing.assert_array_equal(model.predict(np.array([[1.0, 0.0], [0.0, 1.0]])), [2.0, 2.0])


def test_lightgbm_ranks_and_finds_the_interior_optimum():
    pytest.importorskip("lightgbm")
    w, y = _quadratic_swarm()
    assert regmix.cross_validated_rank_correlation(w, y, "lightgbm") > 0.8
    mixture = regmix.propose(regmix.fit(w, y, "lightgbm"), K, samples=20_000)
    assert mixture.sum() == pytest.approx(1.0, abs=1e-12)
    assert np.abs(mixture - W_STAR).sum() < 0.25  # L1; the uniform mixture is 0.5 away


def test_same_seed_same_proposal():
    model = regmix.fit(*_loglinear_swarm(), "loglinear")
    a = regmix.propose(model, K, prior=[0.3, 0.3, 0.2, 0.1, 0.1], samples=5_000, top=50, seed=3)
    b = regmix.propose(model, K, prior=[0.3, 0.3, 0.2, 0.1, 0.1], samples=5_000, top=50, seed=3)
    np.testing.assert_array_equal(a, b)


def test_lightgbm_is_deterministic():
    pytest.importorskip("lightgbm")
    w, y = _quadratic_swarm()
    probe = _swarm_weights(200)
    a = regmix.fit(w, y, "lightgbm", seed=7).predict(probe)
    np.testing.assert_array_equal(a, regmix.fit(w, y, "lightgbm", seed=7).predict(probe))


def test_candidates_reach_both_the_prior_and_the_corners():
    prior = np.array([0.5, 0.2, 0.15, 0.1, 0.05])
    c = regmix.candidate_mixtures(K, prior, 20_000, seed=0)
    np.testing.assert_allclose(c.sum(axis=1), 1.0)
    assert (c.max(axis=1) > 0.99).mean() > 0.1  # sparse, near one-hot mixtures
    assert (np.abs(c - prior).sum(axis=1) < 0.3).mean() > 0.05  # near-prior mixtures


def test_spearman_matches_the_textbook_values():
    assert regmix.spearman(np.arange(5.0), np.arange(5.0) ** 3) == pytest.approx(1.0)
    assert regmix.spearman(np.arange(5.0), -np.arange(5.0)) == pytest.approx(-1.0)
    # ties take their average rank: ranks (1, 2.5, 2.5, 4) against (1, 2, 3, 4)
    assert regmix.spearman(np.array([1, 2, 2, 3.0]), np.arange(4.0)) == pytest.approx(
        0.9486832980505138)
    assert regmix.spearman(np.ones(4), np.arange(4.0)) == 0.0


# ---- reading a swarm ---------------------------------------------------------------------------

M_GOOD = ["id,a,b,c", "r1,0.5,0.3,0.2", "r2,0.2,0.2,0.6", "r3,0.1,0.8,0.1", "r4,1,0,0"]
R_GOOD = ["id,a,b,other", "r3,3.1,2.1,4.0", "r1,3.0,2.0,4.1", "r4,2.5,2.6,4.2", "r2,3.3,2.2,4.3"]


def _write(tmp_path, m_lines, r_lines):
    m, r = tmp_path / "M.csv", tmp_path / "R.csv"
    m.write_text("\n".join(m_lines) + "\n")
    r.write_text("\n".join(r_lines) + "\n")
    return m, r


def test_reads_a_swarm_and_orders_results_by_mixture(tmp_path):
    swarm = regmix.read_swarm(*_write(tmp_path, M_GOOD, R_GOOD))
    assert swarm.ids == ["r1", "r2", "r3", "r4"] and swarm.domains == ["a", "b", "c"]
    np.testing.assert_allclose(swarm.weights[0], [0.5, 0.3, 0.2])
    np.testing.assert_allclose(swarm.measures["a"], [3.0, 3.3, 3.1, 2.5])
    assert list(swarm.measures) == ["a", "b", "other"]


def test_rounded_weights_are_normalised(tmp_path):
    m = [*M_GOOD[:1], "r1,0.502,0.3,0.2", *M_GOOD[2:]]  # sums to 1.002
    swarm = regmix.read_swarm(*_write(tmp_path, m, R_GOOD))
    assert swarm.weights[0].sum() == pytest.approx(1.0, abs=1e-12)


def test_sums_at_the_tolerance_and_spreadsheet_habits_are_read(tmp_path):
    """0.33 x 3 sums to 0.99 (in floats a hair under): normalised, as the tolerance says. A
    byte-order mark and `a, "b"` cells, as spreadsheets write them, read as they look."""
    m = ["\ufeffid,a,b,c", 'r1, "0.33", 0.33, 0.33', "r2,0.34,0.34,0.33", *M_GOOD[3:]]
    swarm = regmix.read_swarm(*_write(tmp_path, m, R_GOOD))
    np.testing.assert_allclose(swarm.weights[:2], [[1 / 3] * 3, [0.34 / 1.01, 0.34 / 1.01,
                                                                0.33 / 1.01]])
    with pytest.raises(UserError, match="column 'id': duplicate id"):  # the id column's own name
        regmix.read_swarm(*_write(tmp_path, [*m, "r1,1,0,0"], R_GOOD))


def test_reads_regmix_published_layout(tmp_path):
    m = ["index,train_the_pile_arxiv,train_the_pile_github,train_the_pile_pile_cc",
         "1,0.0,0.209,0.787", "2,0.333,0.333,0.333", "3,0.5,0.25,0.25", "4,0.1,0.1,0.8"]
    r = ["index,metric/the_pile_arxiv_val_loss,metric/the_pile_pile_cc_val_loss,metric/average",
         "1,7.02,5.17,6.1", "2,4.73,5.34,5.0", "3,4.5,5.5,5.0", "4,6.0,4.9,5.4"]
    swarm = regmix.read_swarm(*_write(tmp_path, m, r))
    assert swarm.domains == ["the_pile_arxiv", "the_pile_github", "the_pile_pile_cc"]
    assert list(swarm.measures) == ["the_pile_arxiv", "the_pile_pile_cc", "average"]
    np.testing.assert_allclose(swarm.weights.sum(axis=1), 1.0)  # 0.996 and 0.999 normalised
    # A target may name the column as the file has it.
    np.testing.assert_allclose(regmix.target_values(swarm, "metric/the_pile_arxiv_val_loss"),
                               swarm.measures["the_pile_arxiv"])


def _replace(lines, index, line):
    return [*lines[:index], line, *lines[index + 1:]]


BAD = {  # name: (M lines, R lines, fragments the one-line message must hold)
    "id only in M": (_replace(M_GOOD, 2, "r9,0.2,0.2,0.6"), R_GOOD, ["M.csv", "row 2", "'r9'", "id"]),
    "id only in R": (M_GOOD, [*R_GOOD, "r8,3.1,2.1,4.0"], ["R.csv", "row 5", "'r8'", "id"]),
    "duplicate id": (_replace(M_GOOD, 3, "r1,0.1,0.8,0.1"), R_GOOD, ["M.csv", "row 3", "duplicate id"]),
    "duplicate column": (_replace(M_GOOD, 0, "id,a,b,a"), R_GOOD, ["M.csv", "'a'", "duplicate column"]),
    "duplicate measure": (M_GOOD, _replace(R_GOOD, 0, "id,a,metric/a_val_loss,x"),
                          ["R.csv", "'a'", "duplicate column"]),
    "empty weight": (_replace(M_GOOD, 2, "r2,,0.4,0.6"), R_GOOD, ["M.csv", "row 2", "'a'", "empty"]),
    "nan weight": (_replace(M_GOOD, 2, "r2,nan,0.4,0.6"), R_GOOD, ["row 2", "'a'", "finite"]),
    "negative weight": (_replace(M_GOOD, 2, "r2,-0.2,0.6,0.6"), R_GOOD,
                        ["M.csv", "row 2", "'a'", "negative"]),
    "text weight": (_replace(M_GOOD, 4, "r4,x,0,0"), R_GOOD, ["M.csv", "row 4", "'a'", "not a number"]),
    "text measure": (M_GOOD, _replace(R_GOOD, 2, "r1,3.0,oops,4.1"),
                     ["R.csv", "row 2", "'r1'", "'b'", "not a number"]),
    "sum off": (_replace(M_GOOD, 1, "r1,0.5,0.3,0.1"), R_GOOD, ["M.csv", "row 1", "sum to 0.9"]),
    "ragged row": (_replace(M_GOOD, 1, "r1,0.5,0.5"), R_GOOD, ["M.csv", "row 1", "cells"]),
    "too few runs": (M_GOOD[:4], R_GOOD[:1] + [x for x in R_GOOD[1:] if not x.startswith("r4")],
                     ["M.csv", "3 runs for 3 domains", "at least"]),
    "a domain no run trains on": (["id,a,b,c", "r1,0.5,0.5,0", "r2,0.2,0.8,0", "r3,0.9,0.1,0",
                                   "r4,1,0,0"], R_GOOD, ["M.csv", "column 'c'", "0 in every run"]),
    "one domain": (["id,a", "r1,1", "r2,1", "r3,1", "r4,1"], R_GOOD, ["M.csv", "one domain"]),
}


@pytest.mark.parametrize("case", BAD, ids=list(BAD))
def test_bad_swarms_are_refused_in_one_line(tmp_path, case):
    m, r, fragments = BAD[case]
    with pytest.raises(UserError) as e:
        regmix.read_swarm(*_write(tmp_path, m, r))
    message = str(e.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message, (fragment, message)


# ---- targets and refusals ----------------------------------------------------------------------


def test_targets(tmp_path):
    swarm = regmix.read_swarm(*_write(tmp_path, M_GOOD, R_GOOD))
    np.testing.assert_allclose(regmix.target_values(swarm, "average"),
                               [(3.0 + 2.0 + 4.1) / 3, (3.3 + 2.2 + 4.3) / 3,
                                (3.1 + 2.1 + 4.0) / 3, (2.5 + 2.6 + 4.2) / 3])
    np.testing.assert_allclose(regmix.target_values(swarm, "b"), [2.0, 2.2, 2.1, 2.6])
    np.testing.assert_allclose(regmix.target_values(swarm, {"a": 3, "b": 1}),
                               0.75 * swarm.measures["a"] + 0.25 * swarm.measures["b"])
    with pytest.raises(UserError, match=r"no measure 'z'; the measures are a, b, other"):
        regmix.target_values(swarm, "z")
    with pytest.raises(UserError, match="no measure 'z'"):
        regmix.target_values(swarm, {"a": 1, "z": 1})
    with pytest.raises(UserError, match="weight 'x' for 'a'"):
        regmix.target_values(swarm, {"a": "x"})
    # A run that lacks a measure (an empty cell) stops only the targets that need it.
    swarm = regmix.read_swarm(*_write(tmp_path, M_GOOD, _replace(R_GOOD, 1, "r3,3.1,2.1,")))
    np.testing.assert_allclose(regmix.target_values(swarm, "b"), [2.0, 2.2, 2.1, 2.6])
    for target in ("other", "average", {"a": 1, "other": 1}):
        with pytest.raises(UserError, match="run 'r3' has no value for 'other'"):
            regmix.target_values(swarm, target)


def test_refusals_outside_the_files():
    w, y = _loglinear_swarm(16)
    with pytest.raises(UserError, match="not one of lightgbm, loglinear"):
        regmix.fit(w, y, "forest")
    model = regmix.fit(w, y, "loglinear")
    with pytest.raises(UserError, match="prior: 3 values for 5 domains"):
        regmix.propose(model, K, prior=[0.5, 0.3, 0.2])
    with pytest.raises(UserError, match="positive"):
        regmix.propose(model, K, prior=[0.5, 0.5, 0.0, 0.0, 0.0])
    for k in (K - 1, 0):  # the model's domains, or none at all
        with pytest.raises(UserError, match=f"k_domains {k}; the model was fitted on {K}"):
            regmix.propose(model, k)
    with pytest.raises(UserError, match="fit: y, row 3: not a finite number"):
        regmix.fit(w, np.where(np.arange(len(y)) == 3, np.nan, y), "loglinear")
    with pytest.raises(UserError, match="the log-linear law: no finite fit"):
        regmix.fit(w, y * 1e300, "loglinear")


def test_a_fit_that_learned_nothing_proposes_the_swarm_mean_and_ranks_nothing(tmp_path):
    """A target the mixture does not move: LightGBM's every prediction is one constant, so the
    "best" candidates would be arbitrary and each fold's constant a correlation out of nothing."""
    pytest.importorskip("lightgbm")
    w, y = _loglinear_swarm(12)
    swarm = regmix.Swarm([f"r{i}" for i in range(12)], [f"d{j}" for j in range(K)], w,
                         {"loss": y, "flat": np.full(12, 2.5)})
    fitted = regmix.fit_swarm(swarm, "flat", "lightgbm")
    assert fitted.flat and fitted.rank_correlation == 0.0
    np.testing.assert_allclose(fitted.proposal, w.mean(axis=0) / w.mean(axis=0).sum())


def test_lightgbm_splits_a_small_swarm():
    """12 runs (the default swarm of 3 domains) on a law LightGBM can follow: with 5 rows per
    leaf no tree could split (a constant fit, rho 0); a third of the runs per leaf learns it."""
    pytest.importorskip("lightgbm")
    assert [regmix.min_data_in_leaf(n) for n in (4, 8, 12, 15, 20, 500)] == [2, 2, 4, 5, 5, 5]
    w = regmix.candidate_mixtures(3, None, 12, seed=12)
    y = 3 + 2 * w[:, 2] + np.random.default_rng(0).normal(0, 0.01, 12)
    assert not regmix.is_flat(regmix.fit(w, y, "lightgbm"), w)
    assert regmix.cross_validated_rank_correlation(w, y, "lightgbm") > 0.5


def test_swarm_fit_command_proposes_and_predicts(tmp_path, capsys):
    """`mixtune swarm fit` on a planted log-linear swarm: the proposal is the planted optimum's
    corner, and --predict writes one prediction per row of P.csv."""
    import json

    from mixtune.cli import main

    rng = np.random.default_rng(0)
    domains = ["web", "code", "books"]
    w = rng.dirichlet(np.ones(3), size=40)
    loss = 2.0 + 0.5 * np.exp(w @ np.array([-2.0, 0.5, 1.0]))
    (tmp_path / "M.csv").write_text("id," + ",".join(domains) + "\n" + "".join(
        f"r{i}," + ",".join(f"{x:.6f}" for x in row) + "\n" for i, row in enumerate(w)))
    (tmp_path / "R.csv").write_text("id,valid\n" + "".join(
        f"r{i},{v:.6f}\n" for i, v in enumerate(loss)))
    args = ["swarm", "fit", "--mixtures", str(tmp_path / "M.csv"), "--results",
            str(tmp_path / "R.csv"), "--regressor", "loglinear"]
    assert main([*args, "--out", str(tmp_path / "proposal.json")]) == 0
    out = capsys.readouterr().out
    assert "out-of-fold rank correlation of the loglinear fit over 40 runs" in out
    proposal = json.loads((tmp_path / "proposal.json").read_text())["train_domain_weights"]
    assert proposal["web"] > 0.9
    (tmp_path / "P.csv").write_text("id,web,code,books\na,1,0,0\nb,0,0,1\n")
    assert main([*args, "--predict", str(tmp_path / "P.csv"), "--out", str(tmp_path / "p.csv")]) == 0
    rows = (tmp_path / "p.csv").read_text().splitlines()
    assert rows[0] == "id,predicted" and [r.split(",")[0] for r in rows[1:]] == ["a", "b"]
    assert float(rows[1].split(",")[1]) < float(rows[2].split(",")[1])  # web is the good corner
    (tmp_path / "P.csv").write_text("id,web,books,code\na,1,0,0\n")
    assert main([*args, "--predict", str(tmp_path / "P.csv")]) == 2  # other domains: refused
    assert "differ from the swarm's" in capsys.readouterr().err


def test_swarm_fit_outputs_are_checked_before_the_fit_and_written_as_csv(tmp_path, capsys,
                                                                          monkeypatch):
    """--out: a folder or an input file refused in one line (exit 2) before anything is fitted;
    OUT.csv quotes an id holding a comma and keeps P.csv's id column name; a proposal goes to
    proposal.json by default, or in M.csv's layout to a .csv; --seed below 0 refused."""
    import csv

    from mixtune.cli import main

    w, y = _loglinear_swarm(24)
    domains = [f"d{j}" for j in range(K)]
    (tmp_path / "M.csv").write_text("id," + ",".join(domains) + "\n" + "".join(
        f"r{i}," + ",".join(f"{x:.9f}" for x in row) + "\n" for i, row in enumerate(w)))
    (tmp_path / "R.csv").write_text("id,loss\n" + "".join(f"r{i},{v}\n" for i, v in enumerate(y)))
    (tmp_path / "P.csv").write_text("run," + ",".join(domains) + '\n"a,1",1,0,0,0,0\n')
    monkeypatch.chdir(tmp_path)
    args = ["swarm", "fit", "--mixtures", "M.csv", "--results", "R.csv", "--regressor",
            "loglinear"]
    fitted, real_fit = [], regmix.fit_swarm

    def counted_fit(*a, **k):
        fitted.append(a)
        return real_fit(*a, **k)

    monkeypatch.setattr(regmix, "fit_swarm", counted_fit)
    for bad, message in [(["--out", "."], "--out .: a folder"),
                         (["--predict", "P.csv", "--out", "M.csv"], "--out M.csv: that is an input"),
                         (["--seed", "-1"], "--seed -1: must be at least 0")]:
        assert main([*args, *bad]) == 2
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err and err.count("\n") == 1, err
    assert not fitted
    assert main([*args, "--predict", "P.csv"]) == 0 and fitted

    header, row = list(csv.reader((tmp_path / "predicted.csv").open()))
    assert header == ["run", "predicted"] and row[0] == "a,1"
    assert main(args) == 0 and "proposal: proposal.json" in capsys.readouterr().out
    assert (tmp_path / "proposal.json").is_file()
    assert main([*args, "--out", "proposal.csv"]) == 0
    _, ids, theirs, weights = regmix._read_mixtures(tmp_path / "proposal.csv")
    assert ids == ["proposal"] and theirs == domains and weights.sum() == pytest.approx(1.0)

