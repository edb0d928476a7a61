from flowlib.progress import progress_bar


def test_progress_bar_yields_everything_and_draws_to_stdout(capsys):
    assert list(progress_bar(range(5), desc="counting")) == [0, 1, 2, 3, 4]
    out = capsys.readouterr().out
    assert "counting" in out and "5/5" in out


def test_disabled_progress_bar_is_silent(capsys):
    bar = progress_bar(iter([1, 2, 3]), total=3, desc="quiet", disable=True)
    assert sum(bar) == 6
    bar.set_postfix(loss="0.1")
    bar.close()
    assert capsys.readouterr().out == ""
