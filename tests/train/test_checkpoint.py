"""Checkpoints: a round trip restores model, optimizer, RNG and state; partial ones never count."""


import torch

from mixtune.train import checkpoint


def model_and_optimizer(seed):
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.LayerNorm(8), torch.nn.Linear(8, 2))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    model(torch.randn(3, 4)).sum().backward()
    opt.step()
    return model, opt


def test_round_trip(tmp_path):
    model, opt = model_and_optimizer(0)
    state = {"step": 7, "tokens": 700, "sampler": {"consumed": [1, 2]}, "mixer": {"alpha": [0.5]}}
    torch.manual_seed(123)
    checkpoint.save(tmp_path, 7, model, opt, state)
    expected_draw = torch.rand(3)

    other, other_opt = model_and_optimizer(1)
    torch.manual_seed(999)
    assert checkpoint.load(checkpoint.latest(tmp_path), other, other_opt) == state
    assert torch.equal(torch.rand(3), expected_draw)  # the RNG continues where it was saved
    for a, b in zip(model.state_dict().values(), other.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    saved, loaded = opt.state_dict()["state"], other_opt.state_dict()["state"]
    for i in saved:
        for key in ("exp_avg", "exp_avg_sq", "step"):
            assert torch.equal(saved[i][key], loaded[i][key])


def test_only_complete_checkpoints_count_and_old_ones_are_pruned(tmp_path):
    model, opt = model_and_optimizer(0)
    for step in (2, 4, 6):
        checkpoint.save(tmp_path, step, model, opt, {"step": step}, keep=2)
    assert checkpoint.list_steps(tmp_path) == [4, 6]
    partial = tmp_path / "checkpoints" / ".step-8.tmp"
    partial.mkdir()  # a crash while writing step 8
    assert checkpoint.latest(tmp_path).name == "step-6"
    checkpoint.clean_partial(tmp_path)
    assert not partial.exists()
