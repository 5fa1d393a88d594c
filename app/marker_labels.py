"""Finding labels that do not overprint each other.

Next to each finding marker a slice view writes the finding's number. Where
markers crowd (fragments of one nodule, an airway wall flagged three times)
their labels would overprint into an unreadable smear, so labels whose boxes
overlap on screen are stacked into one: the most important finding's number
first, then the others (``"367, 366 +1"``). Pure numpy, no Qt.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

#: Approximate width of one label character and height of a label line, screen pixels.
CHAR_PX = 9.5
LINE_PX = 20.0
#: Numbers written in a stacked label before the rest are counted ("+N").
MAX_IDS = 3


@dataclass(frozen=True)
class StackedLabel:
    """One label on screen.

    Args:
        leader: Index (into the inputs) of the finding the label sits at and takes its colour from.
        members: Indices of every finding the label names, leader first.
        text: What it says.
    """

    leader: int
    members: tuple[int, ...]
    text: str


def _text(names: Sequence[str]) -> str:
    shown = ", ".join(names[:MAX_IDS])
    return shown if len(names) <= MAX_IDS else f"{shown} +{len(names) - MAX_IDS}"


def stack_labels(
    x_px: np.ndarray,
    y_px: np.ndarray,
    names: Sequence[str],
    priority: np.ndarray,
    char_px: float = CHAR_PX,
    line_px: float = LINE_PX,
) -> list[StackedLabel]:
    """Merge labels whose boxes would overlap on screen.

    Findings are visited from the highest ``priority`` down (ties: input
    order); each one joins the first label already placed whose box its own
    box overlaps, or starts a new label. A box is ``len(text) * char_px``
    wide and ``line_px`` tall at the label's anchor; a grown label keeps its
    leader's anchor and widens with its text.

    Args:
        x_px, y_px: ``(N,)`` label anchors in screen pixels.
        names: The ``N`` finding numbers as text.
        priority: ``(N,)`` importance (e.g. the selected finding first, then by ``p_nodule``).
        char_px, line_px: Character width and line height in pixels.

    Returns:
        The labels to draw, most important first.
    """
    x = np.asarray(x_px, np.float64).reshape(-1)
    y = np.asarray(y_px, np.float64).reshape(-1)
    order = np.argsort(-np.asarray(priority, np.float64).reshape(-1), kind="stable")
    groups: list[list[int]] = []
    widths: list[float] = []
    for i in order.tolist():
        own = len(names[i]) * char_px
        for g, members in enumerate(groups):
            lead = members[0]
            if abs(x[i] - x[lead]) < max(own, widths[g]) and abs(y[i] - y[lead]) < line_px:
                members.append(i)
                widths[g] = len(_text([names[k] for k in members])) * char_px
                break
        else:
            groups.append([i])
            widths.append(own)
    return [StackedLabel(m[0], tuple(m), _text([names[k] for k in m])) for m in groups]
