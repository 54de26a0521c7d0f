"""The secondary tabs: the settled config with its evidence, and the report of the last conversion."""

from __future__ import annotations

import html

from PySide6.QtCore import QUrl
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHeaderView,
    QLabel,
    QTableWidget,
    QTableWidgetItem,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from ..shared import theme
from ..shared.formatting import human_bytes


class ConfigPage(QWidget):
    """Every config value the plan was built with: inferred ones with their evidence, or the file's."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("configPage")
        self.title = QLabel("No checkpoint open.", self)
        self.title.setObjectName("configTitle")
        self.title.setWordWrap(True)
        self.table = QTableWidget(0, 3, self)
        self.table.setObjectName("configTable")
        self.table.setHorizontalHeaderLabels(["Field", "Value", "Evidence"])
        self.table.verticalHeader().hide()
        self.table.verticalHeader().setDefaultSectionSize(self.fontMetrics().height() + 8)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setAlternatingRowColors(True)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(2, QHeaderView.ResizeMode.Stretch)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 6, 0, 0)
        layout.addWidget(self.title)
        layout.addWidget(self.table, 1)

    def show_config(self, prepared) -> None:
        choice = prepared.config
        rows: list[tuple[str, str, str]] = []
        if choice.origin == "file":
            self.title.setText(f"Config from {choice.path}")
            rows += [(name, repr(value), "") for name, value in sorted(choice.config.to_diff_dict().items())]
        else:
            self.title.setText("Config inferred from the checkpoint: each value with the evidence for it.")
            for name, text in choice.inferred.items():
                value, _, evidence = text.partition(": ")
                rows.append((name, value, evidence))
        conflicts = [(c.field, repr(c.config_value), f"CONFLICT: {c.describe()}") for c in prepared.plan.config_conflicts]
        rows = conflicts + rows + [("note", "", note) for note in choice.notes]
        self.table.setRowCount(len(rows))
        for number, (name, value, evidence) in enumerate(rows):
            for column, text in enumerate((name, value, evidence)):
                item = QTableWidgetItem(text)
                item.setToolTip(text)
                if evidence.startswith("CONFLICT"):
                    item.setForeground(theme.message_colour("error", self.palette()))
                self.table.setItem(number, column, item)

    def clear(self) -> None:
        self.title.setText("No checkpoint open.")
        self.table.setRowCount(0)


class ReportPage(QTextBrowser):
    """What the last conversion wrote, from its `speechport_report.json` content."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("reportView")
        self.setOpenLinks(False)
        self.anchorClicked.connect(self._open_link)
        self.setPlaceholderText("After a conversion, its report shows up here.")

    def show_result(self, result, fixes) -> None:
        report = result.report
        source = report["source"]
        output = report["output"]
        counts = ", ".join(f"{n} {status}" for status, n in report["plan"]["counts"].items() if n)
        folder_url = QUrl.fromLocalFile(str(result.output)).toString()
        recipe = report["recipe"]
        rows = [
            ("Output", f"<a href='{folder_url}'>{html.escape(str(result.output))}</a>"),
            ("Files", html.escape(", ".join(output["files"]))),
            ("Weights", f"{human_bytes(output['weight_bytes'])} ({output['tensors_copied_file_to_file']} tensors copied "
                        f"file-to-file, {output['tensors_written_from_memory']} from memory)"),
            ("Time", f"{report['seconds']:.2f} s"),
            ("Source", f"{html.escape(source['path'])}<br><span style='font-family:monospace'>sha256 {source['sha256']}</span>"),
            ("Recipe", html.escape(f"{recipe['name']} ({recipe['layout']} layout) → {recipe['target_class']}")),
            ("Config", html.escape(report["config"]["path"] or "inferred from the checkpoint")),
            ("Plan", html.escape(counts)),
            ("Your fixes", html.escape(f"{len(fixes.rename)} rename(s), {len(fixes.drop)} drop(s)")
             if not fixes.is_empty() else "none"),
            ("Versions", html.escape(", ".join(f"{k} {v}" for k, v in report["versions"].items()))),
        ]
        dropped = "".join(f"<li>{html.escape(line)}</li>" for line in report.get("dropped_summary", []))
        body = "".join(f"<tr><td style='padding:2px 14px 2px 0'><b>{k}</b></td><td>{v}</td></tr>" for k, v in rows)
        self.setHtml(
            f"<h3>Converted</h3><table>{body}</table>"
            + (f"<h4>Dropped on purpose</h4><ul>{dropped}</ul>" if dropped else "")
            + "<p>The full report is <code>speechport_report.json</code> in the output folder.</p>"
        )

    def _open_link(self, url: QUrl) -> None:
        QDesktopServices.openUrl(url)
