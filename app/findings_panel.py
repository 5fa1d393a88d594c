"""The findings table: one row per nodule or near miss, sortable, driving the views.

Clicking a row or pressing Enter jumps all three views to the finding; the
Next/Previous keys follow the table's current sort order. Accept and Reject
record the reader's verdict on the selected finding.
"""

from __future__ import annotations

from typing import Any, Callable

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, QSortFilterProxyModel, Qt, Signal
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from app.findings import Finding, FindingClass, FindingSet, Mark
from app.planes import Plane, PlaneLayout, plane_layout
from app.state import ViewerState
from app.theme import ACCEPTED_RGB, MALIGNANT_RGB, NODULE_RGB, REJECTED_RGB

#: Column titles.
COLUMNS = ("#", "p nod.", "p mal.", "Ø mm", "LPS mm", "Slice", "Status")
COLUMN_TIPS = (
    "candidate id",
    "probability that it is a nodule (nodule classifier)",
    "probability that it is malignant (malignancy classifier)",
    "equivalent-sphere diameter of the segmented region, mm",
    "centre in patient coordinates, LPS mm (x → left, y → posterior, z → superior); decimals in the tooltip",
    "axial image number (1-based) of the centre",
    "how it shows at the current thresholds, and your verdict: ✓ accepted (A), ✗ rejected (X), U clears",
)
#: Role holding the numeric sort key of a cell.
SORT_ROLE = Qt.ItemDataRole.UserRole
#: Role holding the candidate id of a row (any column).
ID_ROLE = Qt.ItemDataRole.UserRole + 1


def finding_class_text(finding: Finding) -> str:
    """``nodule``, ``malignant`` or ``near miss`` (+ ``, malignant``)."""
    if finding.klass == FindingClass.NEAR_MISS:
        return "near miss" + (", malig." if finding.malignant else "")
    return "malignant" if finding.malignant else "nodule"


def finding_row(finding: Finding, axial: PlaneLayout | None) -> tuple[str, ...]:
    """The table's text cells of one finding (slice numbers are 1-based axial images).

    Positions are rounded to whole mm (the tooltip and the exports keep the
    decimals). The last cell is the class at the current thresholds followed
    by the reader's verdict: ``"malignant ✓"`` accepted, ``"nodule ✗"`` rejected.
    """
    c = finding.candidate
    x, y, z = (float(v) for v in c.center_xyz)
    slice_text = ""
    if axial is not None:
        slice_text = str(int(round(float(c.center_irc[axial.slice_axis]))) + 1)
    review = {Mark.ACCEPTED: " ✓", Mark.REJECTED: " ✗"}.get(finding.mark, "")
    return (
        str(finding.id),
        f"{float(c.p_nodule):.2f}",
        f"{float(c.p_malignant):.2f}",
        f"{float(c.diameter_mm):.1f}",
        f"{x:.0f}, {y:.0f}, {z:.0f}",
        slice_text,
        finding_class_text(finding) + review,
    )


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
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter) if column in (0, 1, 2, 3, 5) else None
        if role == Qt.ItemDataRole.ForegroundRole:
            return self._colour(finding, column)
        if role == Qt.ItemDataRole.ToolTipRole:
            x, y, z = (float(v) for v in finding.candidate.center_xyz)
            verdict = {Mark.ACCEPTED: "accepted", Mark.REJECTED: "rejected"}.get(finding.mark, "not reviewed")
            return (
                f"candidate {finding.id}: LPS x {x:.1f}, y {y:.1f}, z {z:.1f} mm; "
                f"{finding.candidate.voxel_count} voxels; {verdict}. Click or Enter to go there."
            )
        return None

    def _sort_key(self, finding: Finding, column: int) -> Any:
        c = finding.candidate
        keys: tuple[Callable[[], Any], ...] = (
            lambda: finding.id,
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
        if column == 6 and finding.mark == Mark.ACCEPTED:
            return QBrush(QColor(*ACCEPTED_RGB))
        if column in (0, 6):
            rgb = MALIGNANT_RGB if finding.malignant else NODULE_RGB
            alpha = 170 if finding.klass == FindingClass.NEAR_MISS else 255
            return QBrush(QColor(*rgb, alpha))
        if finding.klass == FindingClass.NEAR_MISS:
            return QBrush(QColor(160, 160, 160))
        return None


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
        self.table.setModel(self.proxy)
        self.table.setSortingEnabled(True)
        self.table.sortByColumn(1, Qt.SortOrder.DescendingOrder)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setAlternatingRowColors(True)
        self.table.verticalHeader().hide()
        self.table.verticalHeader().setDefaultSectionSize(22)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setStretchLastSection(True)
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

        self.export_buttons = {}
        export = QHBoxLayout()
        export.addWidget(QLabel("Export:"))
        for kind, text in (("csv", "LUNA16 CSV"), ("json", "JSON"), ("png", "PNG snapshot")):
            button = QPushButton(text)
            button.clicked.connect(lambda _checked=False, k=kind: self.export_requested.emit(k))
            self.export_buttons[kind] = button
            export.addWidget(button)
        export.addStretch(1)

        box = QVBoxLayout(self)
        box.addWidget(self.counts)
        box.addWidget(self.table, 1)
        box.addLayout(review)
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
            accepted = sum(1 for f in fs.findings if f.mark == Mark.ACCEPTED)
            rejected = sum(1 for f in fs.findings if f.mark == Mark.REJECTED)
            review = f" · reviewed: {accepted} accepted, {rejected} rejected" if accepted or rejected else ""
            self.counts.setText(
                f"{fs.n_nodules} nodule{'s' if fs.n_nodules != 1 else ''} "
                f"({fs.n_malignant} malignant) · {fs.n_near_misses} near miss{'es' if fs.n_near_misses != 1 else ''}"
                f" · {fs.n_candidates} candidates{review}"
            )
        has = bool(fs.findings) and not hidden
        for button in (self.prev_button, self.next_button):
            button.setEnabled(has)
        for button in self.export_buttons.values():
            button.setEnabled(self.state.volume is not None)
        self.export_buttons["csv"].setEnabled(result is not None)
        self.export_buttons["json"].setEnabled(result is not None)
        self._on_selection()

    def _on_selection(self) -> None:
        selected = self.state.selected_id
        usable = selected is not None and not self.state.hide_cad
        self.accept_button.setEnabled(usable)
        self.reject_button.setEnabled(usable)
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

    def mark_selected(self, mark: Mark | None) -> None:
        """Accept, reject (or clear, with None) the selected finding."""
        if self.state.selected_id is not None:
            self.state.set_mark(self.state.selected_id, mark)
