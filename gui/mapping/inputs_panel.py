"""The inputs at the top of the window: checkpoint, config, base model, labels, dictionary and output
folder, with the detected recipe, a one-line summary of the config and whose choice the output folder is
beside them. The base model, labels and dictionary rows show only for the checkpoints that use them (a
downstream head; a head that gives classes; a speech recognition model). It shows the workspace's inputs; what the user types or picks is announced by each field's
`pathChosen`, and the window decides what it means."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QEvent, QSettings, Qt, Signal
from PySide6.QtWidgets import QGridLayout, QGroupBox, QHBoxLayout, QLabel, QPushButton, QSizePolicy, QWidget

from ..shared.elided_label import ElidedLabel
from ..shared.widgets import PathField
from ..workspace.workspace import Workspace, classifies, transcribes

CHECKPOINT_FILTER = "Checkpoints (*.pt *.pth *.ckpt *.bin *.safetensors);;All files (*)"
CONFIG_FILTER = "Transformers config (*.json);;All files (*)"
LABELS_FILTER = "Labels, one per line (*.txt);;All files (*)"
DICTIONARY_FILTER = "fairseq dictionary (dict.*.txt *.txt);;All files (*)"
# Inferred config values worth a glance next to the config field (short names for the line).
SUMMARY_FIELDS = {"hidden_size": "hidden", "num_hidden_layers": "layers", "intermediate_size": "FFN",
                  "num_attention_heads": "heads"}


class InputsPanel(QGroupBox):
    detectRequested = Signal()  # "Detect again": forget the recipe the user chose over the detected one
    # "Convert again": class names chosen after converting go into the folder only by converting it
    # again; True: replace the folder, the window's own last conversion, without asking.
    convertAgainRequested = Signal(bool)

    def __init__(self, workspace: Workspace, settings: QSettings, parent: QWidget | None = None):
        super().__init__("Inputs", parent)
        self.setObjectName("inputsGroup")
        self.workspace = workspace
        self._needed_by_shown = ""
        grid = QGridLayout(self)
        # Tight rows: every pixel kept here is a row of the mapping table at 1024×700.
        grid.setContentsMargins(10, 2, 10, 4)
        grid.setHorizontalSpacing(10)
        grid.setVerticalSpacing(2)
        grid.setColumnStretch(1, 3)
        grid.setColumnStretch(2, 2)
        self.source_field = PathField(
            "sourcePath", settings=settings, recent_key="source", file_filter=CHECKPOINT_FILTER,
            dialog_title="Open checkpoint", placeholder="a .pt, .ckpt or .safetensors file — or drop one on the window",
            tooltip="The checkpoint to convert. Press Enter to open what you typed.", parent=self)
        self.config_field = PathField(
            "configPath", settings=settings, recent_key="config", file_filter=CONFIG_FILTER,
            dialog_title="Choose config.json", placeholder="inferred from the checkpoint (optional: a config.json)",
            tooltip="A transformers config.json for the target model; leave empty to infer it from the checkpoint.",
            parent=self)
        self.base_model_field = PathField(
            "baseModelPath", settings=settings, recent_key="base_model", folder=True, or_file=True,
            file_filter=CHECKPOINT_FILTER, dialog_title="Choose the base model",
            placeholder="the upstream model this head was trained on: a transformers folder or its original checkpoint",
            tooltip="A head-only checkpoint (e.g. an S3PRL downstream) needs the upstream model it was trained on: a "
                    "transformers folder, or the upstream's original checkpoint file (fairseq, Microsoft or S3PRL), "
                    "which is converted along with the head.",
            parent=self)
        self.labels_field = PathField(
            "labelsPath", settings=settings, recent_key="labels", file_filter=LABELS_FILTER,
            dialog_title="Choose the labels file", placeholder="optional: class names, one per line, in class order",
            tooltip="A text file naming the head's classes, one per line in class-index order; without it they are "
                    "LABEL_0, LABEL_1, …",
            parent=self)
        self.dictionary_field = PathField(
            "dictionaryPath", settings=settings, recent_key="dictionary", file_filter=DICTIONARY_FILTER,
            dialog_title="Choose the dictionary", placeholder="the symbols the model writes: fairseq's dict.ltr.txt",
            tooltip="A speech recognition (CTC) model writes the symbols of its dictionary: fairseq's dict.ltr.txt, "
                    "one 'symbol count' per line. Needed only when the checkpoint holds none and none lies beside it.",
            parent=self)
        self.output_field = PathField(
            "outputPath", settings=settings, recent_key="output", folder=True,
            dialog_title="Choose the output folder", placeholder="where the transformers folder is written",
            tooltip="The folder to write. It is created when the conversion completes; a non-empty one is replaced only if you agree.",
            parent=self)
        self.config_info = QLabel(self)
        self.config_info.setObjectName("configInfo")
        self.config_info.setTextFormat(Qt.TextFormat.PlainText)
        # Its summary can be long (a head's config): it ends in "…" rather than squeeze the path fields.
        self.config_info.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self._config_summary = ""
        self.config_info.installEventFilter(self)
        self.base_model_info = QLabel("needed: this checkpoint holds only a head", self)
        self.base_model_info.setObjectName("baseModelInfo")
        self.labels_info = QLabel(self)
        self.labels_info.setObjectName("labelsInfo")
        self.dictionary_info = QLabel(self)
        self.dictionary_info.setObjectName("dictionaryInfo")
        self.dictionary_info.setTextFormat(Qt.TextFormat.PlainText)
        self.dictionary_info.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.output_info = QLabel(self)
        self.output_info.setObjectName("outputInfo")
        # One line whatever the recipe's evidence says (a wrapped second line costs the table a row at
        # 1024×700): the rest ends in "…", and all of it is in the tooltip.
        self.recipe_label = ElidedLabel(parent=self)
        self.recipe_label.setObjectName("recipeLabel")
        self.recipe_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        self.labels: dict[str, QLabel] = {}
        rows = (
            ("source", "Chec&kpoint:", self.source_field, None),
            ("config", "Co&nfig:", self.config_field, self.config_info),
            ("base_model", "Ba&se model:", self.base_model_field, self.base_model_info),
            ("labels", "&Labels:", self.labels_field, self.labels_info),
            ("dictionary", "&Dictionary:", self.dictionary_field, self.dictionary_info),
            ("output", "&Output folder:", self.output_field, self.output_info),
        )
        for number, (key, text, field, info) in enumerate(rows):
            label = QLabel(text, self)
            label.setBuddy(field.edit)
            self.labels[key] = label
            grid.addWidget(label, number, 0)
            grid.addWidget(field, number, 1)
            if info is not None:
                grid.addWidget(info, number, 2)
        recipe_title = QLabel("Recipe:", self)
        self.labels["recipe"] = recipe_title
        grid.addWidget(recipe_title, len(rows), 0)
        self.detect_button = QPushButton("Detect again", self)
        self.detect_button.setObjectName("detectRecipeButton")
        self.detect_button.setToolTip("You chose this recipe over the detected one: open the checkpoint with the "
                                      "recipe Speechport detects")
        self.detect_button.clicked.connect(self.detectRequested)
        self.detect_button.hide()
        recipe_row = QHBoxLayout()
        recipe_row.setContentsMargins(0, 0, 0, 0)
        recipe_row.addWidget(self.recipe_label, 1)
        recipe_row.addWidget(self.detect_button)
        grid.addLayout(recipe_row, len(rows), 1, 1, 2)
        workspace.changed.connect(self.refresh)
        self._stale_labels_said = None  # (conversion, names) the "convert again" message was shown for
        workspace.planChanged.connect(self._check_folder_labels)
        workspace.conversionChanged.connect(self._check_folder_labels)

    def fields(self) -> tuple[PathField, ...]:
        return (self.source_field, self.config_field, self.base_model_field, self.labels_field, self.dictionary_field,
                self.output_field)

    def set_base_model_visible(self, visible: bool) -> None:
        for widget in (self.labels["base_model"], self.base_model_field, self.base_model_info):
            widget.setVisible(visible)
        self.base_model_info.setText("needed: this checkpoint holds only a downstream head" if visible else "")

    def set_labels_visible(self, visible: bool) -> None:
        for widget in (self.labels["labels"], self.labels_field, self.labels_info):
            widget.setVisible(visible)

    def set_dictionary_visible(self, visible: bool) -> None:
        for widget in (self.labels["dictionary"], self.dictionary_field, self.dictionary_info):
            widget.setVisible(visible)

    def refresh(self) -> None:
        """Show the workspace's inputs and what is known of its checkpoint."""
        workspace = self.workspace
        for field, path in ((self.source_field, workspace.source), (self.config_field, workspace.config),
                            (self.base_model_field, workspace.base_model), (self.labels_field, workspace.labels),
                            (self.dictionary_field, workspace.dictionary), (self.output_field, workspace.output)):
            field.sync(path)
        self.set_base_model_visible(workspace.base_model_wanted)
        self.set_labels_visible(workspace.labels_wanted())
        self.labels_info.setText(labels_info(workspace))
        self.labels_info.setToolTip(labels_origin(workspace))
        self.set_dictionary_visible(workspace.dictionary_wanted())
        self.dictionary_info.setText(dictionary_info(workspace))
        self.dictionary_info.setToolTip(dictionary_info(workspace, whole=True))
        self.detect_button.setVisible(bool(workspace.recipe))
        if workspace.output_chosen:
            self.output_info.setText("chosen by you")
            self.output_info.setToolTip("You chose this folder: it stays when you open another checkpoint.")
        elif workspace.output_note:
            self.output_info.setText(f"suggested: {workspace.output_note}")
            self.output_info.setToolTip(f"Suggested in your home folder, since {workspace.output_note} (for you at "
                                        "least). It follows the checkpoint you open until you choose a folder.")
        else:
            self.output_info.setText("suggested" if workspace.output else "")
            self.output_info.setToolTip("Beside the checkpoint, named after it; it follows the checkpoint you open "
                                        "until you choose a folder.")
        if workspace.base_model_needed_by and workspace.base_model_needed_by != self._needed_by_shown:
            self.base_model_field.edit.setFocus()
        self._needed_by_shown = workspace.base_model_needed_by
        if workspace.is_opening():
            self.recipe_label.setText("detecting…")
            self.recipe_label.set_extra_tooltip("")
            self._show_config_summary("")
        elif workspace.prepared is not None:
            self.show_prepared(workspace.prepared)
        else:
            self._show_config_summary("")
            self.recipe_label.set_extra_tooltip("")
            if workspace.base_model_needed_by:
                self.recipe_label.setText(f"{workspace.base_model_needed_by} (a downstream head: it needs its base model)")
            elif workspace.source:
                self.recipe_label.setText("— (not opened: see the message above)")
            else:
                self.recipe_label.setText("— (open a checkpoint to detect it)")

    def _show_config_summary(self, text: str) -> None:
        self._config_summary = text
        label = self.config_info
        label.setText(label.fontMetrics().elidedText(text, Qt.TextElideMode.ElideRight, max(label.width(), 0))
                      if label.width() > 0 else text)

    def eventFilter(self, watched, event) -> bool:
        if watched is self.config_info and event.type() == QEvent.Type.Resize:
            self._show_config_summary(self._config_summary)
        return False

    def show_prepared(self, prepared) -> None:
        """The recipe detected and the config settled for an opened checkpoint (`core.conversion.Prepared`)."""
        detection = prepared.detection
        chosen = " · chosen by you" if self.workspace.recipe else ""
        self.recipe_label.setText(f"{prepared.recipe.name}{chosen} · {prepared.layout} layout → "
                                  f"{prepared.plan.target_class}   ({detection.evidence})")
        self.recipe_label.set_extra_tooltip(f"{prepared.recipe.title}\nWhy: {detection.evidence}")
        base = prepared.recipe.base_summary()
        if base is not None:  # an original upstream checkpoint, converted in the same run
            self.base_model_info.setText(f"a {base['recipe']} upstream file: converted with the head")
            self.base_model_info.setToolTip(f"{base['evidence']} → {base['target_class']}")
        elif prepared.base_model is not None:
            self.base_model_info.setText("a transformers folder")
            self.base_model_info.setToolTip("")
        choice = prepared.config
        if choice.origin == "file":
            self._show_config_summary(f"from {Path(choice.path).name}" if choice.path else "from file")
            self.config_info.setToolTip(str(choice.path or ""))
        else:
            shown = [f"{short} {choice.inferred[name].split(':', 1)[0]}" for name, short in SUMMARY_FIELDS.items()
                     if name in choice.inferred]
            if not shown:  # another family: its first few values
                shown = [f"{name} {value.split(':', 1)[0]}" for name, value in list(choice.inferred.items())[:3]]
            more = len(choice.inferred) - len(shown)
            self._show_config_summary("inferred: " + " · ".join(shown) + (f" · +{more} more (Config tab)" if more > 0 else ""))
            self.config_info.setToolTip("\n".join(f"{name} = {value}" for name, value in choice.inferred.items()))


    def _check_folder_labels(self) -> None:
        """Class names chosen after converting (a labels file, or none any more) are not in the folder
        yet: say so once, with the one click that puts them there, instead of leaving the success
        banner over a folder whose bars still read the old names."""
        stale = stale_folder_labels(self.workspace)
        if stale is None:
            self._stale_labels_said = None
            return
        result = self.workspace.result
        key = (id(result), tuple(stale[1]))
        if key == self._stale_labels_said:
            return
        self._stale_labels_said = key
        old, new = stale
        force = Path(self.workspace.output).expanduser().absolute() == Path(result.output)
        self.workspace.messages.show(
            "warning",
            f"{result.output.name} was converted with the classes named {_names(old)}; they are now "
            f"{_names(new)}. Convert again to write the new names into the folder, then compare again to see them.",
            [("Convert again", lambda: self.convertAgainRequested.emit(force), "convertAgainButton")],
        )


def _names(names: list[str]) -> str:
    return ", ".join(names[:4]) + (f" … ({len(names)} in all)" if len(names) > 4 else "")


def head_label_names(prepared) -> list[str] | None:
    """The class names the open head's converted config will carry, in class order (None: no classes)."""
    id2label = getattr(prepared.config.config, "id2label", None) if prepared is not None else None
    return [str(id2label[i]) for i in sorted(id2label)] if id2label else None


def stale_folder_labels(workspace: Workspace) -> tuple[list[str], list[str]] | None:
    """(the names in the last conversion's folder, the names a conversion would write now) when they
    differ; None when they agree or there is nothing to compare."""
    result, prepared = workspace.result, workspace.prepared
    if result is None or prepared is None or not classifies(prepared):
        return None
    recorded = (result.report.get("labels") or {}).get("names")
    wanted = head_label_names(prepared)
    if not recorded or not wanted or recorded == wanted:
        return None
    return recorded, wanted


def labels_info(workspace: Workspace) -> str:
    """Beside the labels field: how many classes the head has, whether they have names yet and from
    where, and whether the folder converted last still has other names."""
    prepared = workspace.prepared
    classes = getattr(prepared.config.config, "num_labels", None) if prepared is not None else None
    if classes is None:
        return ""
    stale = " — not in the folder yet: convert again" if stale_folder_labels(workspace) is not None else ""
    if prepared.labels:
        return f"names the {classes} classes{stale}"
    named = getattr(prepared.recipe, "task_labels", None)
    if named is not None and named.names == head_label_names(prepared):
        if not named.names[0].startswith("LABEL_"):
            shown = ", ".join(named.names[:4]) + (", …" if len(named.names) > 4 else "")
            return f"{classes} classes: {named.short} ({shown}){stale}"
        if named.short:  # a fixed list that does not fit: why the names stay numbered
            return f"{classes} classes; without a file, LABEL_0 to LABEL_{classes - 1} ({named.short}){stale}"
    return f"{classes} classes; without a file, LABEL_0 to LABEL_{classes - 1}{stale}"


def labels_origin(workspace: Workspace) -> str:
    """The Labels row's tooltip: where the class names come from, in full."""
    prepared = workspace.prepared
    if prepared is None or getattr(prepared.config.config, "num_labels", None) is None:
        return ""
    if prepared.labels:
        return f"From the labels file {prepared.labels_path}"
    origin = getattr(prepared.recipe, "labels_origin", None) or ""
    return origin[:1].upper() + origin[1:]


def dictionary_info(workspace: Workspace, whole: bool = False) -> str:
    """Beside the dictionary field: how many symbols the model writes and where they come from, or
    that it needs a dictionary to open; `whole`: the tooltip, with the first symbols."""
    prepared = workspace.prepared
    if workspace.dictionary_needed and not transcribes(prepared):
        return ("needed: the checkpoint holds no dictionary and none lies beside it" if not whole else
                "This speech recognition checkpoint carries no dictionary of its symbols (task_state) and no "
                "dict.ltr.txt lies beside it: choose the one it was fine-tuned with.")
    vocabulary = prepared.recipe.vocabulary() if transcribes(prepared) and hasattr(prepared.recipe, "vocabulary") else None
    if vocabulary is None:
        return ""
    return vocabulary.described() if whole else f"{len(vocabulary)} symbols, from {vocabulary.origin}"
