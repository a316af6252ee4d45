"""One curve figure for ``ferlab curves`` and the report: the same styles, whole-epoch ticks,
axes that do not zoom into a single point."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pytest

from ferlab import plots
from ferlab.plots import TRAIN_STYLE, VAL_STYLE, curves_figure, figure_fonts


def _history(n: int, acc: float = 0.5) -> list[dict]:
    return [{"epoch": e, "train_loss": 1.5 - 0.1 * e, "val_loss": 1.6 - 0.05 * e,
             "train_acc": acc + 0.02 * e, "val_acc": acc + 0.01 * e} for e in range(1, n + 1)]


def _styles(ax) -> dict[str, str]:
    return {ln.get_label(): ln.get_linestyle() for ln in ax.get_lines()
            if not ln.get_label().startswith("_")}


def test_train_solid_validation_dashed_on_both_axes():
    fig = curves_figure([_history(5), _history(3)], ["a", "b"])
    try:
        assert (TRAIN_STYLE, VAL_STYLE) == ("-", "--")
        for ax in fig.axes:
            assert _styles(ax) == {"a train": "-", "a validation": "--", "b train": "-",
                                   "b validation": "--"}
        assert "solid = train, dashed = validation" in fig.axes[0].get_title()
    finally:
        plt.close(fig)


@pytest.mark.parametrize("acc", [0.3, 0.98])
def test_one_epoch_run_has_whole_epoch_ticks_and_a_readable_axis(acc):
    fig = curves_figure([_history(1, acc)], ["one"])
    try:
        ax_loss, ax_acc = fig.axes
        for ax in fig.axes:
            assert list(ax.get_xticks()) == [1]
        lo, hi = ax_acc.get_ylim()
        assert 0 <= lo and hi <= 1 and hi - lo >= 0.1
        lo, hi = ax_loss.get_ylim()
        assert lo >= 0 and hi - lo >= 0.2
    finally:
        plt.close(fig)


def test_long_runs_get_integer_ticks():
    fig = curves_figure([_history(40)], ["long"])
    try:
        ticks = fig.axes[0].get_xticks()
        assert all(float(t).is_integer() for t in ticks)
    finally:
        plt.close(fig)


def test_words_in_another_language():
    with figure_fonts("zh"):
        fig = curves_figure([_history(2)], ["a"], {"train": "训练", "val": "验证", "epoch": "轮"})
    try:
        assert set(_styles(fig.axes[1])) == {"a 训练", "a 验证"}
        assert fig.axes[1].get_xlabel() == "轮"
    finally:
        plt.close(fig)


def test_chinese_figures_only_where_a_font_has_the_glyphs(monkeypatch):
    monkeypatch.setattr(plots, "cjk_font", lambda: None)
    assert plots.figure_language("zh") == "en" and plots.figure_language("en") == "en"
    monkeypatch.setattr(plots, "cjk_font", lambda: "Noto Sans CJK SC")
    assert plots.figure_language("zh") == "zh"
    with figure_fonts("zh"):
        assert plt.rcParams["font.family"] == ["DejaVu Sans", "Noto Sans CJK SC"]
    assert "Noto Sans CJK SC" not in plt.rcParams["font.family"]  # restored afterwards
