from mixtune.tables import aligned, from_dicts


def test_aligned_names_left_numbers_right_and_a_rule():
    lines = aligned([("domain", "log-ppl"), ("code", "1.5"), ("average", "12.25")])
    assert lines == ["domain   log-ppl", "-------  -------", "code         1.5",
                     "average    12.25"]


def test_from_dicts_takes_the_keys_as_header():
    assert from_dicts([{"step": "length", "kept": 3}]) == ["step    kept", "------  ----",
                                                           "length     3"]
    assert from_dicts([]) == []
