"""Charts as PNG images (matplotlib's Agg canvas: no display, no global pyplot state, safe in threads).

The portfolio draws a student's goals set and done per week (`weekly_bars`); the adviser digest draws
its class's eight-week trend with a `TrendChart`, which keeps what every class's chart shares. Labels
come in already translated: this module holds no sentences.
"""

from __future__ import annotations

import io
from typing import Callable, Sequence, TypeVar

# matplotlib and Pillow are imported where a chart is drawn: a process that never draws one (the chat engine,
# the scheduler) keeps about 50 MB and a third of a second of start-up less.

SIZE = (640, 320)  # pixels: readable in a chat and on a printed page
DPI = 100
COLOURS = ("#9ab7d3", "#2f6f4f", "#d08c3a", "#7b5ea7")  # one per series, told apart in greyscale too

T = TypeVar("T")


def _figure(size: tuple[int, int]) -> tuple:
    """A blank figure of `size` pixels on its Agg canvas."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(size[0] / DPI, size[1] / DPI), dpi=DPI)
    return figure, FigureCanvasAgg(figure)


def weekly_bars(weeks: Sequence[T], series: dict[str, Sequence[int]], labels: Callable[[T], str] = str,
                size: tuple[int, int] = SIZE) -> bytes:
    """A PNG of side-by-side bars per week, one colour per series (e.g. goals set, goals done).

    `series` maps a legend label to one count per week; `labels` writes a week on the x axis.
    The image is exactly `size` pixels.
    """
    figure, _ = _figure(size)
    axes = figure.add_subplot()
    width = 0.8 / max(len(series), 1)
    for n, (name, counts) in enumerate(series.items()):
        axes.bar([x + (n - (len(series) - 1) / 2) * width for x in range(len(weeks))], counts, width=width,
                 label=name, color=COLOURS[n % len(COLOURS)])
    step = max(1, -(-len(weeks) // 8))  # at most eight week labels, so they never overlap
    axes.set_xticks(range(0, len(weeks), step), [labels(week) for week in weeks][::step])
    axes.yaxis.get_major_locator().set_params(integer=True)
    axes.set_ylim(bottom=0, top=max([1, *(max(counts, default=0) for counts in series.values())]) + 0.5)
    axes.spines[["top", "right"]].set_visible(False)
    if series:
        axes.legend(loc="upper left", frameon=False)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI)
    return buffer.getvalue()


class Series:
    """One line of a trend chart: its label (already in the reader's language) and one value per week."""

    __slots__ = ("label", "values")

    def __init__(self, label: str, values: Sequence[float]):
        self.label, self.values = label, tuple(values)


class TrendChart:
    """A line chart of percentages by week for thousands of classes (the adviser digest). Everything but the lines
    — axes, grid, week labels, title, legend — is the same for every class of a week and language, so it is drawn
    once and kept as a background; each class's chart restores it and draws only its lines (about a tenth of a
    fresh figure's cost). One per thread: a figure is not shared."""

    def __init__(self, size: tuple[int, int] = SIZE) -> None:
        self.size = size
        self.figure, self.canvas = _figure(size)
        self.axes = self.figure.add_subplot()
        self.figure.subplots_adjust(left=0.1, right=0.98, top=0.9, bottom=0.12)
        self.axes.set_ylim(0, 125)  # the room above 100 % holds the legend
        self.axes.set_yticks(range(0, 101, 20))
        self.axes.set_ylabel("%")
        self.axes.grid(True, alpha=0.3)
        self.axes.spines[["top", "right"]].set_visible(False)
        self.drawn_for: tuple | None = None  # (title, weeks, labels) of the background kept
        self.background = None

    def _background(self, title: str, weeks: Sequence[str], labels: Sequence[str]) -> None:
        """Draw everything but the lines for these weeks and labels, and keep it."""
        axes = self.axes
        for line in list(axes.lines):
            line.remove()
        for n, label in enumerate(labels):
            axes.plot(range(len(weeks)), [0] * len(weeks), marker="o", color=COLOURS[n % len(COLOURS)], label=label)
        axes.set_xlim(-0.3, len(weeks) - 0.7)
        axes.set_xticks(range(len(weeks)), list(weeks))
        axes.set_title(title)
        if labels:
            axes.legend(loc="upper left", ncols=len(labels), frameon=False, fontsize="small")
        for line in axes.lines:
            line.set_visible(False)
        self.canvas.draw()
        self.background = self.canvas.copy_from_bbox(self.figure.bbox)
        for line in axes.lines:
            line.set_visible(True)
        self.drawn_for = (title, tuple(weeks), tuple(labels))

    def png(self, title: str, weeks: Sequence[str], series: Sequence[Series]) -> bytes:
        """`series` over `weeks` (the x axis' labels), 0–100 %, as PNG bytes of exactly `size` pixels."""
        labels = [line.label for line in series]
        if self.drawn_for != (title, tuple(weeks), tuple(labels)):
            self._background(title, weeks, labels)
        self.canvas.restore_region(self.background)
        for line, values in zip(self.axes.lines, series):
            line.set_ydata(values.values)
            self.axes.draw_artist(line)
        from PIL import Image

        buffer = io.BytesIO()
        Image.frombuffer("RGBA", self.canvas.get_width_height(), self.canvas.buffer_rgba(), "raw", "RGBA", 0, 1) \
            .convert("RGB").save(buffer, format="PNG", compress_level=1)
        return buffer.getvalue()
