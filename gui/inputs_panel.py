"""The inputs at the top of the window: checkpoint, config, base model and output folder, with the
detected recipe and a one-line summary of the config beside them."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QSettings, Qt
from PySide6.QtWidgets import QGridLayout, QGroupBox, QLabel, QWidget

from .widgets import PathField

CHECKPOINT_FILTER = "Checkpoints (*.pt *.pth *.ckpt *.bin *.safetensors);;All files (*)"
CONFIG_FILTER = "Transformers config (*.json);;All files (*)"
# Inferred config values worth a glance next to the config field (short names for the line).
SUMMARY_FIELDS = {"hidden_size": "hidden", "num_hidden_layers": "layers", "intermediate_size": "FFN",
                  "num_attention_heads": "heads"}


class InputsPanel(QGroupBox):
    def __init__(self, settings: QSettings, parent: QWidget | None = None):
        super().__init__("Inputs", parent)
        self.setObjectName("inputsGroup")
        grid = QGridLayout(self)
        grid.setContentsMargins(10, 6, 10, 8)
        grid.setHorizontalSpacing(10)
        grid.setVerticalSpacing(5)
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
            "baseModelPath", settings=settings, recent_key="base_model", folder=True,
            dialog_title="Choose the base model folder", placeholder="the upstream model folder this head was trained on",
            tooltip="A head-only checkpoint (e.g. S3PRL downstream) needs the upstream model folder it was trained on.",
            parent=self)
        self.output_field = PathField(
            "outputPath", settings=settings, recent_key="output", folder=True,
            dialog_title="Choose the output folder", placeholder="where the transformers folder is written",
            tooltip="The folder to write. It is created when the conversion completes; a non-empty one is replaced only if you agree.",
            parent=self)
        self.config_info = QLabel(self)
        self.config_info.setObjectName("configInfo")
        self.config_info.setTextFormat(Qt.TextFormat.PlainText)
        self.base_model_info = QLabel("needed: this checkpoint holds only a head", self)
        self.base_model_info.setObjectName("baseModelInfo")
        self.recipe_label = QLabel(self)
        self.recipe_label.setObjectName("recipeLabel")
        self.recipe_label.setWordWrap(True)
        self.recipe_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        self.labels: dict[str, QLabel] = {}
        rows = (
            ("source", "&Checkpoint:", self.source_field, None),
            ("config", "Con&fig:", self.config_field, self.config_info),
            ("base_model", "&Base model:", self.base_model_field, self.base_model_info),
            ("output", "&Output folder:", self.output_field, None),
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
        grid.addWidget(self.recipe_label, len(rows), 1, 1, 2)

    def fields(self) -> tuple[PathField, ...]:
        return (self.source_field, self.config_field, self.base_model_field, self.output_field)

    def set_base_model_visible(self, visible: bool) -> None:
        for widget in (self.labels["base_model"], self.base_model_field, self.base_model_info):
            widget.setVisible(visible)
        self.base_model_info.setText("needed: this checkpoint holds only a downstream head" if visible else "")

    def show_unopened(self, opening: bool) -> None:
        """No plan to describe: say that detection is under way, or what to do; otherwise keep
        what was said last (e.g. that a head needs its base model)."""
        if opening:
            self.recipe_label.setText("detecting…")
        elif not self.source_field.path():
            self.recipe_label.setText("— (open a checkpoint to detect it)")
        self.config_info.setText("")

    def show_prepared(self, prepared) -> None:
        """The recipe detected and the config settled for an opened checkpoint (`core.conversion.Prepared`)."""
        detection = prepared.detection
        self.recipe_label.setText(
            f"{prepared.recipe.name} · {prepared.layout} layout → {prepared.plan.target_class}   ({detection.evidence})")
        self.recipe_label.setToolTip(f"{prepared.recipe.title}\nWhy: {detection.evidence}")
        choice = prepared.config
        if choice.origin == "file":
            self.config_info.setText(f"from {Path(choice.path).name}" if choice.path else "from file")
            self.config_info.setToolTip(str(choice.path or ""))
        else:
            shown = [f"{short} {choice.inferred[name].split(':', 1)[0]}" for name, short in SUMMARY_FIELDS.items()
                     if name in choice.inferred]
            if not shown:  # another family: its first few values
                shown = [f"{name} {value.split(':', 1)[0]}" for name, value in list(choice.inferred.items())[:3]]
            more = len(choice.inferred) - len(shown)
            self.config_info.setText("inferred: " + " · ".join(shown) + (f" · +{more} more (Config tab)" if more > 0 else ""))
            self.config_info.setToolTip("\n".join(f"{name} = {value}" for name, value in choice.inferred.items()))
