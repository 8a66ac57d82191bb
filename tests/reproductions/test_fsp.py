from reproductions.fsp import epochs_to_reach


def test_epochs_to_reach_counts_from_one():
    assert epochs_to_reach([0.5, 0.7, 0.9, 0.95], 0.9) == 3
    assert epochs_to_reach([0.5, 0.7], 0.9) is None
