"""The book's local Sphinx extensions (book/_ext), tested as functions; the site tests check their effect."""

import sys

import pytest
from notebooks import ROOT

sys.path.insert(0, str(ROOT / "book" / "_ext"))

import colab_links  # noqa: E402
import grading_marks  # noqa: E402
import stream_outputs  # noqa: E402
import theme_fixes  # noqa: E402


def stream(text: str, name: str = "stdout") -> dict:
    return {"output_type": "stream", "name": name, "text": text}


def test_redraws_of_a_progress_bar_collapse_to_the_last_one():
    outputs = [stream("\rfit:   0%| 0/10"), stream("\rfit:  50%| 5/10"), stream("\rfit: 100%| 10/10\n"),
               stream("fit: trained\n"), {"output_type": "display_data", "data": {}}, stream("after\n")]  # fmt: skip
    joined = stream_outputs.join_streams_like_a_terminal(outputs)
    assert [o["output_type"] for o in joined] == ["stream", "display_data", "stream"]
    assert joined[0]["text"] == "fit: 100%| 10/10\nfit: trained\n"
    assert outputs[0]["text"] == "\rfit:   0%| 0/10", "the executed notebook's outputs are left as they were"
    assert stream_outputs.collapse_carriage_returns("a\rb\r\nc") == "b\nc"


def test_progress_bars_stay_off_the_page():
    bar = "training psd: {}%|{}| {}/1000 [00:04<00:06, 98.1it/s, loss=0.31]"
    outputs = [stream("\r" + bar.format(40, "####      ", 400)), stream("\r" + bar.format(100, "#" * 10, 1000) + "\n"),
               stream("trained psd: 1000 steps in 10.2 s\n"), {"output_type": "display_data", "data": {}},
               stream("\r" + bar.format(100, "#" * 10, 1000) + "\n")]  # fmt: skip
    joined = stream_outputs.join_streams_like_a_terminal(outputs)
    assert [o["output_type"] for o in joined] == ["stream", "display_data"], "a stream of bars alone disappears"
    assert joined[0]["text"] == "trained psd: 1000 steps in 10.2 s\n"
    assert stream_outputs.without_progress_bars("loss 40%|  and 3/4 done") == "loss 40%|  and 3/4 done"


def test_myst_nb_joins_streams_through_the_extension():
    stream_outputs._patch_myst_nb()
    stream_outputs._patch_myst_nb()  # twice: still one wrapper
    import myst_nb.core.render as render

    merged = render.coalesce_streams([stream("\rA 10%"), stream("\rA 100%")])
    assert len(merged) == 1 and merged[0]["text"].strip() == "A 100%"


def test_the_colab_launch_button_opens_the_colab_edition():
    context = {"header_buttons": [{"label": "launch-buttons", "buttons": [
        {"url": "https://colab.research.google.com/github/o/r/blob/main/book/07_x.ipynb"},
        {"url": "https://example.org/book/07_x.ipynb"}]}]}  # fmt: skip
    colab_links._colab_edition(None, "book/07_x", "page.html", context, None)
    urls = [button["url"] for button in context["header_buttons"][0]["buttons"]]
    assert urls == ["https://colab.research.google.com/github/o/r/blob/main/colab/07_x.ipynb",
                    "https://example.org/book/07_x.ipynb"]  # fmt: skip


def test_the_theme_keeps_its_navbar_off():
    class Config:
        html_theme_options = {"launch_buttons": {}}

    config = Config()
    theme_fixes._no_navbar_search(None, config)
    assert config.html_theme_options == {"launch_buttons": {}, "navbar_persistent": []}


def _cell(kind: str, cell_id: str, text: str) -> dict:
    extra = {"execution_count": None, "outputs": []} if kind == "code" else {}
    return {"cell_type": kind, "id": cell_id, "metadata": {}, "source": text, **extra}


MINI_NOTEBOOK = {
    "cells": [
        _cell("markdown", "a", "# Mini\n\n```{exercise} Add\n:label: ex-add\n\nAdd.\n```"),
        _cell("markdown", "b", "```{solution-start} ex-add\n:class: dropdown\n```"),
        _cell(
            "code",
            "c",
            "def add(a, b):\n    ### BEGIN SOLUTION\n    return a + b  # the gated answer\n    ### END SOLUTION",
        ),  # noqa: E501
        _cell("markdown", "d", "```{solution-end}\n```"),
        _cell("markdown", "e", "```{exercise} Say\n:label: ex-say\n\nSay.\n```"),
        _cell("markdown", "f", "```{solution} ex-say\nThe folded answer.\n```"),
    ],
    "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
    "nbformat": 4,
    "nbformat_minor": 5,
}


def build_mini_site(folder, student: bool, monkeypatch) -> str:
    """Build a one-page site with myst-nb, sphinx-exercise and the extension; return the page's HTML."""
    import json

    from sphinx.application import Sphinx

    (folder / "conf.py").write_text(
        "extensions = ['myst_nb', 'sphinx_exercise', 'grading_marks']\nnb_execution_mode = 'off'\n"
        "exclude_patterns = ['_build']\n"
    )
    (folder / "index.ipynb").write_text(json.dumps(MINI_NOTEBOOK))
    monkeypatch.setenv("FLOWMAPS_EDITION", "student" if student else "reader")
    app = Sphinx(str(folder), str(folder), str(folder / "_build"), str(folder / "_doctrees"), "html",
                 status=None, warning=None, freshenv=True)  # fmt: skip
    app.build()
    return (folder / "_build" / "index.html").read_text()


def test_the_site_hides_grading_markers_and_a_student_build_hides_solutions(tmp_path, monkeypatch):
    reader, student = tmp_path / "reader", tmp_path / "student"
    reader.mkdir(), student.mkdir()
    page = build_mini_site(reader, student=False, monkeypatch=monkeypatch)
    assert "the gated answer" in page and "The folded answer" in page
    assert "BEGIN SOLUTION" not in page and "END SOLUTION" not in page
    page = build_mini_site(student, student=True, monkeypatch=monkeypatch)
    assert "Add." in page and "Say." in page, "the exercises stay"
    assert "the gated answer" not in page and "The folded answer" not in page
    monkeypatch.setenv("FLOWMAPS_EDITION", "teacher")
    with pytest.raises(ValueError, match="FLOWMAPS_EDITION must be"):
        grading_marks.student_build()
