"""The findings table: one row per lesion (nodule candidate or near miss), sortable, driving the views.

Rows are numbered 1…N by p(nodule) (:attr:`Finding.number`; the candidate ids
stay internal), fragments of one lesion are listed in their lesion's tooltip.
Clicking a row or pressing Enter jumps all three views to the finding; the
Next/Previous keys follow the table's current sort order. Accept and Reject
record the reader's verdict on the selected finding, the note field a free-text
note; both are kept with the series (:mod:`app.review`).
"""

from __future__ import annotations

from typing import Any, Callable

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, QSize, QSortFilterProxyModel, Qt, Signal
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QStyle,
    QLabel,
    QLineEdit,
    QPushButton,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from app.findings import Finding, FindingClass, FindingSet, Mark, Thresholds
from app.planes import Plane, PlaneLayout, plane_layout
from app.state import ViewerState
from app.theme import ACCEPTED_RGB, MALIGNANT_RGB, NODULE_RGB, REJECTED_RGB

#: Column titles.
COLUMNS = ("#", "Location", "p nod.", "p mal.", "Ø mm", "LPS mm", "Slice", "Status")
COLUMN_TIPS = (
    "finding number, 1 = most probable nodule (the same number as on the images)",
    "right (R) or left (L) lung, and the upper, middle or lower third of the lungs' height (not a lobe)",
    "probability that it is a nodule (nodule classifier)",
    "probability that it is malignant (malignancy classifier)",
    "equivalent-sphere diameter of the segmented region, mm",
    "centre in patient coordinates, LPS mm (x → left, y → posterior, z → superior)",
    "axial slice of the centre as numbered on the view (1-based; the voxel index in the readout is one less)",
    "how it shows at the current thresholds, and your verdict: ✓ accepted (A), ✗ rejected (X), U clears; ✎ a note",
)
#: Numeric columns (right-aligned).
NUMERIC_COLUMNS = (0, 2, 3, 4, 6)
#: Rows the table shows without scrolling, at least.
MIN_VISIBLE_ROWS = 10
ROW_HEIGHT_PX = 22
#: Role holding the numeric sort key of a cell.
SORT_ROLE = Qt.ItemDataRole.UserRole
#: Role holding the candidate id of a row (any column).
ID_ROLE = Qt.ItemDataRole.UserRole + 1


def finding_class_text(finding: Finding) -> str:
    """``nodule``, ``malignant`` or ``near miss`` (+ ``, malignant``)."""
    if finding.klass == FindingClass.NEAR_MISS:
        return "near miss" + (", malig." if finding.malignant else "")
    return "malignant" if finding.malignant else "nodule"


def slice_number(finding: Finding, axial: PlaneLayout | None) -> int | None:
    """The axial slice of a finding's centre as the view numbers it (1-based), or None without a layout."""
    if axial is None:
        return None
    return int(round(float(finding.candidate.center_irc[axial.slice_axis]))) + 1


def finding_row(finding: Finding, axial: PlaneLayout | None) -> tuple[str, ...]:
    """The table's text cells of one finding (slice numbers are 1-based axial images, as on the view).

    Positions are in LPS mm to 0.1 mm. The last cell is the class at the current
    thresholds followed by the reader's verdict: ``"malignant ✓"`` accepted,
    ``"nodule ✗"`` rejected, and ``✎`` when it has a note.
    """
    c = finding.candidate
    x, y, z = (float(v) for v in c.center_xyz)
    number = slice_number(finding, axial)
    review = {Mark.ACCEPTED: " ✓", Mark.REJECTED: " ✗"}.get(finding.mark, "")  # type: ignore[arg-type]
    return (
        str(finding.number or finding.id),
        finding.location,
        f"{float(c.p_nodule):.2f}",
        f"{float(c.p_malignant):.2f}",
        f"{float(c.diameter_mm):.1f}",
        f"{x:.1f}, {y:.1f}, {z:.1f}",
        "" if number is None else str(number),
        finding_class_text(finding) + review + (" ✎" if finding.note else ""),
    )


def finding_tooltip(finding: Finding, axial: PlaneLayout | None) -> str:
    """A row's tooltip: position, slice and voxel index, size, fragments, verdict and note."""
    c = finding.candidate
    x, y, z = (float(v) for v in c.center_xyz)
    verdict = {Mark.ACCEPTED: "accepted", Mark.REJECTED: "rejected"}.get(finding.mark, "not reviewed")  # type: ignore[arg-type]
    number = slice_number(finding, axial)
    where = "" if number is None or axial is None else f"slice {number} / {axial.n_slices} (index {number - 1}); "
    lines = [
        f"#{finding.number} ({finding.location or 'location unknown'}): LPS x {x:.1f}, y {y:.1f}, z {z:.1f} mm; "
        f"{where}{c.voxel_count} voxels; {verdict}. Click or Enter to go there.",
    ]
    if finding.fragments:
        parts = ", ".join(f"{float(f.diameter_mm):.1f} mm (p {float(f.p_nodule):.2f})" for f in finding.fragments)
        lines.append(f"One lesion with {len(finding.fragments)} smaller piece{'s' if len(finding.fragments) != 1 else ''} "
                     f"inside its radius, not listed as rows: {parts}.")
    if finding.note:
        lines.append(f"Note: {finding.note}")
    return "\n".join(lines)


class FindingsTableModel(QAbstractTableModel):
    """Rows = the state's findings (nodules and near misses)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._findings: tuple[Finding, ...] = ()
        self._rows: list[tuple[str, ...]] = []
        self._axial: PlaneLayout | None = None

    def set_findings(self, findings: FindingSet, axial: PlaneLayout | None) -> None:
        """Replace all rows."""
        self.beginResetModel()
        self._findings = findings.findings
        self._axial = axial
        self._rows = [finding_row(f, axial) for f in self._findings]
        self.endResetModel()

    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: N802, B008
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: N802, B008
        return 0 if parent.isValid() else len(COLUMNS)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole) -> Any:  # noqa: N802
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return COLUMNS[section]
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.ToolTipRole:
            return COLUMN_TIPS[section]
        return None

    def data(self, index: QModelIndex | QPersistentModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        finding = self._findings[index.row()]
        column = index.column()
        if role == Qt.ItemDataRole.DisplayRole:
            return self._rows[index.row()][column]
        if role == ID_ROLE:
            return finding.id
        if role == SORT_ROLE:
            return self._sort_key(finding, column)
        if role == Qt.ItemDataRole.TextAlignmentRole:
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter) if column in NUMERIC_COLUMNS else None
        if role == Qt.ItemDataRole.ForegroundRole:
            return self._colour(finding, column)
        if role == Qt.ItemDataRole.ToolTipRole:
            return finding_tooltip(finding, self._axial)
        return None

    def _sort_key(self, finding: Finding, column: int) -> Any:
        c = finding.candidate
        keys: tuple[Callable[[], Any], ...] = (
            lambda: finding.number,
            lambda: finding.location,
            lambda: float(c.p_nodule),
            lambda: float(c.p_malignant),
            lambda: float(c.diameter_mm),
            lambda: float(c.center_xyz[2]),
            lambda: float(c.center_irc[self._axial.slice_axis if self._axial else 0]),
            lambda: 10 * ((2 if finding.malignant else 1) + (2 if finding.klass == FindingClass.NODULE else 0))
            + {Mark.ACCEPTED: 2, Mark.REJECTED: 1}.get(finding.mark, 0),
        )
        return keys[column]()

    def _colour(self, finding: Finding, column: int) -> QBrush | None:
        if finding.mark == Mark.REJECTED:
            return QBrush(QColor(*REJECTED_RGB))
        if column == 7 and finding.mark == Mark.ACCEPTED:
            return QBrush(QColor(*ACCEPTED_RGB))
        if column in (0, 7):
            rgb = MALIGNANT_RGB if finding.malignant else NODULE_RGB
            alpha = 170 if finding.klass == FindingClass.NEAR_MISS else 255
            return QBrush(QColor(*rgb, alpha))
        if finding.klass == FindingClass.NEAR_MISS:
            return QBrush(QColor(160, 160, 160))
        return None


class SortedColumnHeader(QHeaderView):
    """A table header that keeps room for the sort arrow in the sorted column only.

    Qt's header reserves the arrow's width in every column once sorting is on,
    which made the eight columns too wide for the dock and cut the Status
    column ("malig…"); here only the sorted column is that much wider.
    """

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(Qt.Orientation.Horizontal, parent)
        self.sortIndicatorChanged.connect(lambda *_: self.resizeSections(QHeaderView.ResizeMode.ResizeToContents))

    def sectionSizeFromContents(self, logical_index: int) -> QSize:  # noqa: N802 — Qt override
        size = super().sectionSizeFromContents(logical_index)
        if self.isSortIndicatorShown() and logical_index != self.sortIndicatorSection():
            arrow = size.height() + self.style().pixelMetric(QStyle.PixelMetric.PM_HeaderMargin, None, self)
            size.setWidth(max(self.minimumSectionSize(), size.width() - arrow))
        return size


class FindingsPanel(QWidget):
    """Counts, the findings table and the review buttons, bound to the state.

    Signals:
        export_requested(str): ``"csv"``, ``"json"`` or ``"png"`` from the export buttons.
    """

    export_requested = Signal(str)

    def __init__(self, state: ViewerState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self._axial: PlaneLayout | None = None
        self._syncing = False
        self._build()
        self._unsubscribe = [
            state.subscribe("volume", self._on_volume),
            state.subscribe("findings", self._on_findings),
            state.subscribe("selection", self._on_selection),
            state.subscribe("cad", self._on_findings),
        ]
        self.destroyed.connect(lambda *_: [off() for off in self._unsubscribe])
        self._on_volume()

    def _build(self) -> None:
        self.counts = QLabel("No detection yet.")
        self.counts.setObjectName("counts")
        self.counts.setWordWrap(True)
        self.model = FindingsTableModel(self)
        self.proxy = QSortFilterProxyModel(self)
        self.proxy.setSourceModel(self.model)
        self.proxy.setSortRole(SORT_ROLE)
        self.table = QTableView()
        self.table.setHorizontalHeader(SortedColumnHeader(self.table))  # before sorting is switched on
        self.table.setModel(self.proxy)
        self.table.setSortingEnabled(True)
        self.table.sortByColumn(2, Qt.SortOrder.DescendingOrder)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setAlternatingRowColors(True)
        self.table.verticalHeader().hide()
        self.table.verticalHeader().setDefaultSectionSize(ROW_HEIGHT_PX)
        self.table.verticalHeader().setMinimumSectionSize(ROW_HEIGHT_PX)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setStretchLastSection(True)
        header.setMinimumSectionSize(36)
        # ten rows and the header stay visible however the docks are arranged
        frame = 2 * self.table.frameWidth() + 2
        self.table.setMinimumHeight(MIN_VISIBLE_ROWS * ROW_HEIGHT_PX + max(header.sizeHint().height(), 32) + frame)
        self.table.selectionModel().currentRowChanged.connect(self._on_current_row)
        self.table.clicked.connect(self._jump_to_row)
        self.table.activated.connect(self._jump_to_row)

        self.prev_button = QPushButton("◀ Previous")
        self.next_button = QPushButton("Next ▶")
        self.accept_button = QPushButton("✓ Accept")
        self.reject_button = QPushButton("✗ Reject")
        self.prev_button.setToolTip("Previous finding (P)")
        self.next_button.setToolTip("Next finding (N)")
        self.accept_button.setToolTip("Accept the selected finding (A)")
        self.reject_button.setToolTip("Reject the selected finding (X)")
        self.prev_button.clicked.connect(lambda: self.step(-1))
        self.next_button.clicked.connect(lambda: self.step(+1))
        self.accept_button.clicked.connect(lambda: self.mark_selected(Mark.ACCEPTED))
        self.reject_button.clicked.connect(lambda: self.mark_selected(Mark.REJECTED))
        review = QHBoxLayout()
        for button in (self.prev_button, self.next_button, self.accept_button, self.reject_button):
            review.addWidget(button)
        self.note = QLineEdit()
        self.note.setPlaceholderText("Note on the selected finding (Enter to keep)")
        self.note.setToolTip("A free-text note on the selected finding, kept with the series' review")
        self.note.setClearButtonEnabled(True)
        self.note.editingFinished.connect(self._note_edited)

        self.export_buttons = {}
        export = QHBoxLayout()
        export.addWidget(QLabel("Export:"))
        for kind, text in (("pdf", "Report (PDF)"), ("csv", "LUNA16 CSV"), ("json", "JSON"), ("png", "PNG")):
            button = QPushButton(text)
            button.clicked.connect(lambda _checked=False, k=kind: self.export_requested.emit(k))
            self.export_buttons[kind] = button
            export.addWidget(button)
        export.addStretch(1)

        box = QVBoxLayout(self)
        box.addWidget(self.counts)
        box.addWidget(self.table, 1)
        box.addLayout(review)
        box.addWidget(self.note)
        box.addLayout(export)

    # --- state → panel --------------------------------------------------------------
    def _on_volume(self) -> None:
        ct = self.state.volume
        self._axial = plane_layout(ct.geometry, ct.shape, Plane.AXIAL) if ct is not None else None
        self._on_findings()

    def _on_findings(self) -> None:
        fs = self.state.findings
        self._syncing = True
        self.model.set_findings(fs, self._axial)
        self._syncing = False
        result = self.state.result
        hidden = self.state.hide_cad and result is not None
        self.table.setVisible(not hidden)  # a first read without CAD shows no findings at all
        if hidden:
            self.counts.setText("CAD findings hidden for an unaided read — press H to show them.")
        elif result is None:
            self.counts.setText("No detection yet." if self.state.volume is not None else "No series open.")
        else:
            self.counts.setText(counts_text(fs, self.state.thresholds))
        has = bool(fs.findings) and not hidden
        for button in (self.prev_button, self.next_button):
            button.setEnabled(has)
        for button in self.export_buttons.values():
            button.setEnabled(self.state.volume is not None)
        for kind in ("csv", "json", "pdf"):
            self.export_buttons[kind].setEnabled(result is not None)
        self._on_selection()

    def _on_selection(self) -> None:
        selected = self.state.selected_id
        usable = selected is not None and not self.state.hide_cad
        self.accept_button.setEnabled(usable)
        self.reject_button.setEnabled(usable)
        self.note.setEnabled(usable)
        finding = self.state.findings.by_id(selected) if usable else None
        if not self.note.hasFocus() or finding is None:
            self.note.setText("" if finding is None else finding.note)
        self._syncing = True
        try:
            row = self.row_of(selected) if selected is not None else -1
            if row < 0:
                self.table.clearSelection()
            else:
                index = self.proxy.index(row, 0)
                self.table.selectRow(row)
                self.table.setCurrentIndex(index)
                self.table.scrollTo(index)
        finally:
            self._syncing = False

    # --- panel → state ----------------------------------------------------------------
    def ids_in_view_order(self) -> list[int]:
        """Candidate ids in the table's current (sorted) order."""
        return [int(self.proxy.index(r, 0).data(ID_ROLE)) for r in range(self.proxy.rowCount())]

    def row_of(self, candidate_id: int) -> int:
        """The table row showing ``candidate_id``, or -1."""
        for r in range(self.proxy.rowCount()):
            if int(self.proxy.index(r, 0).data(ID_ROLE)) == candidate_id:
                return r
        return -1

    def _on_current_row(self, current: QModelIndex, _previous: QModelIndex) -> None:
        if not self._syncing and current.isValid():
            self.state.select(int(current.data(ID_ROLE)))

    def _jump_to_row(self, index: QModelIndex) -> None:
        if index.isValid():
            self.state.select(int(index.data(ID_ROLE)), jump=True)

    def step(self, step: int) -> None:
        """Select the next (+1) or previous (-1) finding in table order and jump to it."""
        self.state.step_selection(step, self.ids_in_view_order())

    def _note_edited(self) -> None:
        if self.state.selected_id is not None and self.note.isEnabled():
            self.state.set_note(self.state.selected_id, self.note.text())

    def mark_selected(self, mark: Mark | None) -> None:
        """Accept, reject (or clear, with None) the selected finding."""
        if self.state.selected_id is not None:
            self.state.set_mark(self.state.selected_id, mark)


def counts_text(fs: FindingSet, thresholds: Thresholds) -> str:
    """The header above the table: CAD candidates at the thresholds, never a diagnosis.

    For example ``"3 CAD candidates ≥ 0.50 · 1 with p(malignant) ≥ 0.50 · 2 near misses · 21 in all"``,
    then the fragments folded into lesions and the review so far.
    """
    n, near = fs.n_nodules, fs.n_near_misses
    parts = [
        f"{n} CAD candidate{'s' if n != 1 else ''} ≥ {thresholds.nodule:.2f}",
        f"{fs.n_malignant} with p(malignant) ≥ {thresholds.malignancy:.2f}",
        f"{near} near miss{'es' if near != 1 else ''}",
        f"{fs.n_candidates} in all",
    ]
    if fs.n_fragments:
        parts.append(f"{fs.n_fragments} piece{'s' if fs.n_fragments != 1 else ''} merged into lesions")
    accepted = sum(1 for f in fs.findings if f.mark == Mark.ACCEPTED)
    rejected = sum(1 for f in fs.findings if f.mark == Mark.REJECTED)
    if accepted or rejected:
        parts.append(f"reviewed: {accepted} accepted, {rejected} rejected")
    return " · ".join(parts)
