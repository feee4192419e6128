import torch
from hypothesis import given, settings, strategies as st

from musicgen_cli import patterns

S = 99  # special id in these tests


def test_mono_layout_matches_the_reference_picture():
    codes = torch.arange(4).repeat(4, 1)[None]  # frame t of every codebook holds t
    seq, known = patterns.build(codes, patterns.delays_for(4), 4, S)
    expected = [
        [S, 0, 1, 2, 3, S, S, S],
        [S, S, 0, 1, 2, 3, S, S],
        [S, S, S, 0, 1, 2, 3, S],
        [S, S, S, S, 0, 1, 2, 3],
    ]
    assert seq[0].tolist() == expected
    assert known.all()


def test_stereo_delays_pair_left_and_right():
    assert patterns.delays_for(8, channels=2) == [0, 0, 1, 1, 2, 2, 3, 3]
    assert patterns.delays_for(4) == [0, 1, 2, 3]


def test_unknown_cells_are_exactly_the_frames_after_the_prompt():
    codes = torch.randint(0, 50, (2, 4, 3))
    seq, known = patterns.build(codes, patterns.delays_for(4), 10, S)
    assert seq.shape == (2, 4, 14)
    assert int((~known).sum()) == 2 * 4 * (10 - 3)
    assert (seq[~known] == S).all()
    # the first column that holds an unknown cell is frame 3 of codebook 0 (column 4)
    assert int((~known).any(1).any(0).nonzero()[0]) == 4


@settings(max_examples=60, deadline=None)
@given(
    frames=st.integers(1, 40),
    k=st.sampled_from([1, 2, 4, 8]),
    stereo=st.booleans(),
    batch=st.integers(1, 3),
    data=st.data(),
)
def test_round_trip(frames, k, stereo, batch, data):
    channels = 2 if stereo and k % 2 == 0 else 1
    delays = patterns.delays_for(k, channels)
    prompt = data.draw(st.integers(0, frames))
    codes = torch.randint(0, S, (batch, k, frames))
    seq, known = patterns.build(codes[:, :, :prompt], delays, frames, S)
    # fill the unknown cells the way generation does, from the true codes, and revert
    full, _ = patterns.build(codes, delays, frames, S)
    seq = torch.where(known, seq, full)
    assert torch.equal(patterns.revert(seq, delays, frames), codes)
    assert seq.shape[2] == frames + max(delays) + 1
    assert (seq[:, :, 0] == S).all()  # the start column
