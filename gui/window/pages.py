"""The secondary tabs: the settled config with its evidence, and the report of the last conversion."""

from __future__ import annotations

import html
from pathlib import Path

from PySide6.QtCore import QUrl
from PySide6.QtGui import QDesktopServices, QGuiApplication
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
    """What the last conversion wrote, from its `speechport_report.json` content, and what the
    converted folder says of its comparisons with the original: the latest verdict in plain words,
    never a pass for weights other than those compared (checked on a worker against the weights as
    they are, whenever the page is shown or a comparison is recorded), and the ones before it."""

    def __init__(self, workspace=None, parent: QWidget | None = None):
        if parent is None and isinstance(workspace, QWidget):  # built with its parent only
            workspace, parent = None, workspace
        super().__init__(parent)
        self.setObjectName("reportView")
        self.setOpenLinks(False)
        self.anchorClicked.connect(self._open_link)
        self.setPlaceholderText("After a conversion, its report shows up here.")
        self.workspace = workspace
        self._result = None
        self._fixes = None
        self._proof = None  # core.proof.record.FolderProof of the folder shown
        self._checked_folder = None
        self.checking = None
        if workspace is not None:
            self.checking = workspace.task_slot("Report", doing="reading the converted folder's report")
            workspace.comparisonChanged.connect(self._comparison_changed)

    # -- what is shown ------------------------------------------------------------------------------

    def show_result(self, result, fixes) -> None:
        self._result, self._fixes = result, fixes
        if self._proof is not None and self._proof.folder != Path(result.output):
            self._proof = None
        self._render()
        self.check_folder()

    def clear(self) -> None:
        self._result = self._fixes = self._proof = self._checked_folder = None
        super().clear()

    def folder(self) -> Path | None:
        """The converted folder whose verification is shown: the last conversion's, else the one compared."""
        workspace = self.workspace
        if self._result is not None:
            return Path(self._result.output)
        compared = getattr(workspace, "compared", None) if workspace is not None else None
        return Path(compared.converted) if compared is not None else None

    def check_folder(self) -> None:
        """Read the folder's recorded comparisons again and check them against its weights (on a worker)."""
        folder = self.folder()
        if folder is None or self.checking is None:
            return
        from ..workspace import workers

        self._checked_folder = folder
        self.checking.start(workers.Task("report", _folder_proof, folder), self._proof_ready)

    def _proof_ready(self, _task, proof) -> None:
        if proof.folder != self.folder():
            return
        self._proof = proof
        self._render()

    def _comparison_changed(self) -> None:
        workspace = self.workspace
        if workspace.comparison is not None and workspace.compared is not None:
            self.check_folder()  # a comparison was recorded in its folder (or said why not)

    def showEvent(self, event) -> None:
        super().showEvent(event)
        self.check_folder()  # the weights may have changed since it was last shown

    # -- HTML ---------------------------------------------------------------------------------------

    def _render(self) -> None:
        parts = []
        folder = self.folder()
        if folder is not None:  # first: whether the folder was proven is what its readers ask first
            parts.append(verification_html(self._proof, folder))
        if self._result is not None:
            parts.append(self._conversion_html(self._result, self._fixes))
        if self._result is not None:
            parts.append("<p>The full report is <code>speechport_report.json</code> in the output folder.</p>")
        if parts:
            self.setHtml("".join(parts))

    def _conversion_html(self, result, fixes) -> str:
        report = result.report
        source = report["source"]
        output = report["output"]
        counts = ", ".join(f"{n} {status}" for status, n in report["plan"]["counts"].items() if n)
        folder_url = QUrl.fromLocalFile(str(result.output)).toString()
        recipe = report["recipe"]
        labels = report.get("labels")
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
             if fixes is not None and not fixes.is_empty() else "none"),
            *([("Labels", html.escape(f"{', '.join(labels['names'][:12])}{' …' if len(labels['names']) > 12 else ''} "
                                      f"— {labels['origin']}"))] if labels else []),
            ("Versions", html.escape(", ".join(f"{k} {v}" for k, v in report["versions"].items()))),
        ]
        dropped = "".join(f"<li>{html.escape(line)}</li>" for line in report.get("dropped_summary", []))
        body = "".join(f"<tr><td style='padding:2px 14px 2px 0'><b>{k}</b></td><td>{v}</td></tr>" for k, v in rows)
        return (f"<h3>Converted</h3><table>{body}</table>"
                + (f"<h4>Dropped on purpose</h4><ul>{dropped}</ul>" if dropped else ""))

    def _open_link(self, url: QUrl) -> None:
        QDesktopServices.openUrl(url)


HISTORY_ROWS = 10  # the Report tab's history table; the report keeps more (core.proof.record)


def _folder_proof(folder):
    from ...core.proof.record import folder_proof

    return folder_proof(folder)


def verification_html(proof, folder: Path) -> str:
    """The Verification section: the latest comparison in plain words, then the ones before it."""
    from ...core.proof.model_card import latest_sentence, same_weights

    heading = "<h3>Verification</h3>"
    if proof is None:
        return heading + "<p>Reading the folder's report…</p>"
    palette = QGuiApplication.palette()
    if proof.latest is None:
        why = f" ({html.escape(proof.problem)})" if proof.problem else ""
        return heading + (f"<p>Not compared with the original model yet{why}: press Compare on the Audition tab; "
                          "the result is recorded in the folder's report and model card.</p>")
    sentence = html.escape(latest_sentence(proof.latest, proof.current_sha256, with_verdict=False))
    if proof.holds:
        passed = proof.latest.get("verdict") == "pass"
        colour = theme.message_colour("success" if passed else "error", palette).name()
        title = f"Verified: {'pass' if passed else 'fail'}"
    else:
        colour = theme.message_colour("warning", palette).name()
        title = "Not verified for these weights"
    rows = []
    for entry in proof.history[:HISTORY_ROWS]:
        clips = ", ".join(html.escape(Path(str(c.get("audio", "?"))).name) for c in entry.get("clips", []))
        mine = same_weights(entry, proof.current_sha256)
        worst = [c.get("max_abs_diff") for c in entry.get("clips", [])]
        worst_text = "n/a" if not worst or None in worst else f"{max(worst):.3g}"
        when = str(entry.get("when") or "")[:16].replace("T", " ")
        cells = (when, html.escape(str(entry.get("by") or "")), clips,
                 html.escape(str(entry.get("verdict"))) if mine else f"({html.escape(str(entry.get('verdict')))})",
                 worst_text, html.escape(f"{entry.get('tolerance', 0):g}") if isinstance(entry.get("tolerance"), float) else "",
                 "these" if mine else "other")
        rows.append("<tr>" + "".join(f"<td style='padding:1px 10px 1px 0'>{cell}</td>" for cell in cells) + "</tr>")
    more = len(proof.history) - HISTORY_ROWS + proof.dropped
    header = "".join(f"<th align='left' style='padding:1px 10px 1px 0'>{name}</th>" for name in
                     ("When (UTC)", "By", "Clip", "Verdict", "Max |diff|", "Tolerance", "Weights"))
    return (heading + f"<p style='color:{colour}'><b>{title}</b> — {sentence}.</p>"
            + f"<h4>Comparisons recorded in {html.escape(folder.name)}, the latest first</h4>"
            + f"<table><tr>{header}</tr>{''.join(rows)}</table>"
            + (f"<p>and {more} older.</p>" if more > 0 else ""))
