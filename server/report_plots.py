"""The run report's figures, drawn with matplotlib's Agg canvas and returned as PNG data URIs.

No pyplot: a `Figure` saved directly needs no backend or display and keeps no global
state, so a report can be built in any thread of the ServerApp.
"""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

__all__ = [
    "Bars",
    "Line",
    "Panel",
    "bars",
    "confusion_grid",
    "curves",
    "heatmap",
    "png_uri",
    "roc",
]

_DPI = 90


@dataclass(frozen=True)
class Line:
    """One curve: its legend label, x and y values; `bold` for the overall one."""

    label: str
    xs: Sequence[float]
    ys: Sequence[float]
    bold: bool = False


@dataclass(frozen=True)
class Panel:
    """One subplot of line curves."""

    title: str
    ylabel: str
    lines: Sequence[Line] = field(default_factory=tuple)
    xlabel: str = "round"


@dataclass(frozen=True)
class Bars:
    """Grouped bars: one group per category, one bar per series in each group."""

    title: str
    ylabel: str
    categories: Sequence[str]
    series: Sequence[tuple[str, Sequence[float]]]


def png_uri(png: bytes) -> str:
    """A PNG file's bytes as a ``data:image/png;base64,`` URI."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _render(figure: object) -> str:
    buffer = io.BytesIO()
    # Constrained layout already fits the margins: no second draw for a tight bounding box.
    figure.savefig(buffer, format="png", dpi=_DPI)  # type: ignore[attr-defined]
    return png_uri(buffer.getvalue())


def _figure(rows: int, columns: int, width: float = 5.0, height: float = 3.4) -> tuple:
    from matplotlib.figure import Figure

    # Constrained layout: a panel's title never runs into the axis labels above it.
    figure = Figure(figsize=(width * columns, height * rows), layout="constrained")
    axes = figure.subplots(rows, columns, squeeze=False)
    return figure, [ax for row in axes for ax in row]


def curves(panels: Sequence[Panel], columns: int = 2) -> str:
    """Line plots side by side (e.g. train loss and validation loss per round)."""
    from matplotlib.ticker import MaxNLocator

    columns = max(1, min(columns, len(panels)))
    figure, axes = _figure(math.ceil(len(panels) / columns), columns)
    for ax, panel in zip(axes, panels, strict=False):
        for line in panel.lines:
            ax.plot(
                line.xs,
                line.ys,
                marker="o" if len(line.xs) < 30 else None,
                markersize=3,
                linewidth=2.4 if line.bold else 1.0,
                color="black" if line.bold else None,
                alpha=1.0 if line.bold else 0.75,
                label=line.label,
            )
        ax.set(title=panel.title, xlabel=panel.xlabel, ylabel=panel.ylabel)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # rounds are whole numbers
        ax.grid(alpha=0.3)
        if panel.lines:
            ax.legend(fontsize=7)
    for ax in axes[len(panels) :]:
        ax.set_visible(False)
    return _render(figure)


def confusion_grid(matrices: Sequence[tuple[str, tuple[int, int, int, int]]]) -> str:
    """2x2 confusion matrices (true class by rows, predicted by columns), one per name."""
    columns = min(4, len(matrices))
    figure, axes = _figure(math.ceil(len(matrices) / columns), columns, 3.2, 3.0)
    for index, (ax, (name, (tp, fp, tn, fn))) in enumerate(zip(axes, matrices, strict=False)):
        grid = [[tn, fp], [fn, tp]]
        ax.imshow(grid, cmap="Blues", vmin=0, vmax=max(1, tp, fp, tn, fn))
        for row in range(2):
            for column in range(2):
                value = grid[row][column]
                dark = value > 0.6 * max(1, tp, fp, tn, fn)
                ax.text(column, row, str(value), ha="center", va="center",
                        color="white" if dark else "black", fontsize=12)  # fmt: skip
        ax.set_xticks([0, 1], ["0 benign", "1 malignant"], fontsize=8)
        first = index % columns == 0  # the class names once per row, left of the row
        ax.set_yticks([0, 1], ["0 benign", "1 malignant"] if first else ["", ""], fontsize=8)
        ax.set(title=name, xlabel="predicted", ylabel="true" if first else "")
    for ax in axes[len(matrices) :]:
        ax.set_visible(False)
    return _render(figure)


def roc(lines: Sequence[Line], operating: Sequence[tuple[str, float, float]] = ()) -> str:
    """ROC curves (false positive rate, true positive rate), with the 0.5-threshold points."""
    figure, (ax,) = _figure(1, 1, 5.0, 4.6)
    ax.plot([0, 1], [0, 1], linestyle=":", color="grey", linewidth=1, label="chance")
    for line in lines:
        ax.plot(line.xs, line.ys, linewidth=2.4 if line.bold else 1.0,
                color="black" if line.bold else None, label=line.label)  # fmt: skip
    for name, fpr, tpr in operating:
        ax.plot([fpr], [tpr], marker="x", linestyle="none", markersize=8,
                label=f"{name} at threshold 0.5")  # fmt: skip
    ax.set(xlim=(0, 1), ylim=(0, 1.01), xlabel="false positive rate", ylabel="true positive rate")
    ax.set_aspect("equal")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    return _render(figure)


def bars(chart: Bars) -> str:
    """A grouped bar chart (e.g. Dice of each class, one bar per site)."""
    figure, (ax,) = _figure(1, 1, max(5.0, 1.2 * len(chart.categories) + 2), 3.6)
    count = max(1, len(chart.series))
    width = 0.8 / count
    for index, (name, values) in enumerate(chart.series):
        offsets = [c + (index - (count - 1) / 2) * width for c in range(len(chart.categories))]
        ax.bar(offsets, values, width=width, label=name,
               color="black" if index == 0 else None)  # fmt: skip
    ax.set_xticks(range(len(chart.categories)), list(chart.categories))
    ax.set(title=chart.title, ylabel=chart.ylabel)
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize=7)
    return _render(figure)


def heatmap(
    rows: Sequence[str],
    columns: Sequence[str],
    values: Sequence[Sequence[float]],
    title: str,
    lower_is_better: bool = False,
) -> str:
    """A table of values as coloured cells, each labelled (NaN: a grey '-').

    Values all within [0, 1] (AUC, Dice) are coloured on that whole scale, so that a
    table of close scores does not look like one of far apart ones.
    """
    import numpy as np
    from matplotlib import colormaps

    grid = np.ma.masked_invalid(np.asarray(values, dtype=float))
    width, height = 1.4 + 1.2 * len(columns), 1.2 + 0.5 * len(rows)
    figure, (ax,) = _figure(1, 1, max(4.0, width), max(2.4, height))
    # Green is better either way: reversed for losses and distances.
    cmap = colormaps["RdYlGn_r" if lower_is_better else "RdYlGn"].with_extremes(bad="#dddddd")
    finite = grid.compressed()
    unit = finite.size > 0 and finite.min() >= 0 and finite.max() <= 1
    shown = ax.imshow(
        grid, cmap=cmap, aspect="auto", vmin=0 if unit else None, vmax=1 if unit else None
    )
    for row in range(len(rows)):
        for column in range(len(columns)):
            value = grid[row, column]
            text = "-" if np.ma.is_masked(value) else f"{float(value):.3f}"
            ax.text(column, row, text, ha="center", va="center", fontsize=9)
    ax.set_xticks(range(len(columns)), list(columns), fontsize=8)
    ax.set_yticks(range(len(rows)), list(rows), fontsize=8)
    ax.set(title=title, xlabel="scored at site", ylabel="model")
    figure.colorbar(shown, ax=ax)
    return _render(figure)
