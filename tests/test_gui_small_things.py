"""Smaller things the window must get right (offscreen, driven like a user would): quitting while a
conversion runs, trusting a training script's pickle, a source that changes under a conversion,
the bulk-rename dialog and the fixed rows from the keyboard's and the eye's point of view, the
demo run twice, and a terminal kept free of other libraries' warnings."""

from __future__ import annotations

import collections
import contextlib
import os
import subprocess
import sys
import warnings

import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pytestqt")

import torch  # noqa: E402
from PySide6.QtCore import Qt  # noqa: E402
from PySide6.QtWidgets import QApplication, QMessageBox, QStyleOptionViewItem, QWidget  # noqa: E402
from test_pickle_bounds import TrainState, global_, save_from_main, tagged_tensor, text, zip_with_pickle  # noqa: E402

from speechport.core.demo import DEMO_CHECKPOINT, DEMO_CLIPS  # noqa: E402
from speechport.core.storage.hashing import SOURCE_CHANGED  # noqa: E402
from speechport.gui.mapping.bulk_rename_dialog import BulkRenameDialog, elide_around  # noqa: E402
from speechport.gui.shared.dialogs import TRUST_NAMES_SHOWN  # noqa: E402

from conftest import FIXTURES  # noqa: E402
from gui_support import convert_button, message, table, wait_idle, wait_open  # noqa: E402
from support import checkpoint_path, leftovers, load_fs2  # noqa: E402

UPSTREAMS = FIXTURES / "s3prl_upstreams"
WAVLM_ASV = UPSTREAMS / "downstream" / "wavlm_asv" / "states-2.ckpt"
WAVLM_UPSTREAM = UPSTREAMS / "upstreams" / "wavlm_base_plus" / "wavlm_base_plus.pt"
WAVLM_CLIP = UPSTREAMS / "audio" / "speechlike_1p0s.wav"
YES, NO = QMessageBox.StandardButton.Yes, QMessageBox.StandardButton.No


@pytest.fixture
def slow_conversion(monkeypatch):
    """A slow disk: a conversion takes seconds, so there is time to act while it runs."""
    from speechport.core.storage import safetensors_writer

    copy = safetensors_writer._Copier.copy

    def slow_copy(self, *args, **kwargs):
        import time

        time.sleep(0.04)
        return copy(self, *args, **kwargs)

    monkeypatch.setattr(safetensors_writer._Copier, "copy", slow_copy)


# -- quitting while converting ------------------------------------------------------------------------


def start_slow_conversion(make_window, qtbot, tmp_path):
    out = tmp_path / "converted"
    window = make_window(source=checkpoint_path("cs_s64"), output=out)
    wait_open(qtbot, window)
    window.convert()
    qtbot.waitUntil(lambda: window.conversion_bar.progress_bar.value() > 50)
    return window, out


def test_quitting_while_a_conversion_runs_asks_and_no_lets_it_finish(make_window, answers, qtbot, tmp_path,
                                                                    slow_conversion):
    window, out = start_slow_conversion(make_window, qtbot, tmp_path)
    answers.reply = NO
    window.act_quit.trigger()
    title, text, default = answers.questions[-1]
    assert text.startswith("Stop the conversion and quit?") and default == NO
    assert window.isVisible() and window.busy_converting()
    qtbot.waitUntil(lambda: window.result is not None)
    assert (out / "model.safetensors").is_file()
    window.act_quit.trigger()  # nothing runs now: not asked again
    assert len(answers.questions) == 1 and not window.isVisible()


def test_quitting_while_a_conversion_runs_and_yes_stops_it_leaving_nothing(make_window, answers, qtbot, tmp_path,
                                                                          slow_conversion):
    window, out = start_slow_conversion(make_window, qtbot, tmp_path)
    answers.reply = YES
    window.close()
    assert len(answers.questions) == 1 and answers.questions[0][1].startswith("Stop the conversion and quit?")
    assert not window.isVisible()
    qtbot.waitUntil(lambda: not window.busy())  # the cancelled task's outcome arrives after the close
    assert window.result is None and not out.exists() and leftovers(tmp_path) == []


# -- pickles that need the user's consent -------------------------------------------------------------


def test_a_training_scripts_main_state_opens_once_trusted(make_window, answers, qtbot, tmp_path):
    source = save_from_main(tmp_path / "state.pt", lambda: TrainState(7, load_fs2("cs_s64")))
    answers.reply = YES
    window = make_window(source=source, output=tmp_path / "out")
    wait_open(qtbot, window)
    (title, text, _default), = answers.questions
    assert "__main__.TrainState" in text and window.prepared.checkpoint.trusted
    assert window.prepared.recipe.name == "conformer_shaw" and window.prepared.plan.ok
    assert convert_button(window).isEnabled()
    window.convert()
    qtbot.waitUntil(lambda: window.result is not None)


def test_what_only_torchs_safe_loader_refuses_is_offered_trust(make_window, answers, qtbot, tmp_path):
    source = tmp_path / "defaultdict.pt"
    torch.save({"model": load_fs2("cs_s64"), "counts": collections.defaultdict(list, a=[1]), "ema": tagged_tensor()},
               source)
    answers.reply = NO
    window = make_window(source=source, output=tmp_path / "out")
    qtbot.waitUntil(lambda: len(answers.questions) == 1)
    wait_idle(qtbot, window)
    title, text, default = answers.questions[0]
    assert title == "Trust this checkpoint?" and default == NO
    assert "torch's weights-only loader refuses its pickle" in text and "runs whatever code" in text
    assert window.prepared is None and message(window).startswith("Not opened: you chose not to trust it.")
    answers.reply = YES
    window.act_reload.trigger()
    wait_open(qtbot, window)
    assert len(answers.questions) == 2 and window.prepared.checkpoint.trusted


def test_the_trust_question_names_a_handful_of_globals_and_counts_the_rest(make_window, answers, qtbot, tmp_path):
    names = [f"C{number:03}" for number in range(500)]
    data = b"\x80\x02}" + text("objects") + b"(" + b"".join(global_("training_code", name) for name in names) + b"ls."
    source = zip_with_pickle(tmp_path / "many.pt", data)
    answers.reply = NO
    window = make_window(source=source, output=tmp_path / "out")
    qtbot.waitUntil(lambda: len(answers.questions) == 1)
    wait_idle(qtbot, window)
    text_shown = answers.questions[0][1]
    listed = [line for line in text_shown.splitlines() if line.startswith("  • ")]
    assert listed == [f"  • training_code.{name}" for name in names[:TRUST_NAMES_SHOWN]] + [
        f"  • and {500 - TRUST_NAMES_SHOWN} more"]
    assert len(text_shown) < 1000


# -- a source changed under a conversion --------------------------------------------------------------


def test_a_source_changed_while_converted_is_opened_again_so_the_next_conversion_works(make_window, qtbot, tmp_path):
    source = tmp_path / "model.pt"
    source.write_bytes(checkpoint_path("cs_s64").read_bytes())
    out = tmp_path / "out"
    window = make_window(source=source, output=out)
    wait_open(qtbot, window)
    window.rename_target("encoder.layers.0.ffn1.inner_proj.weight", "encoder.layers.0.ffn1.no_such.weight")
    window.undo_stack.undo()  # a fix made and undone: the history is the checkpoint's and stays
    opened = window.prepared
    source.write_bytes(source.read_bytes())  # written again (same bytes): it is not the file that was opened
    window.convert()
    qtbot.waitUntil(lambda: not window.busy() and window.prepared is not None and window.prepared is not opened)
    assert window.result is None and not out.exists()
    assert SOURCE_CHANGED in message(window) and "It is opened again as it is now, with your fixes." in message(window)
    assert window.undo_stack.count() == 1
    window.convert()  # the checkpoint as it is now: converted
    qtbot.waitUntil(lambda: window.result is not None or not window.busy())
    assert window.result is not None, message(window)
    assert (out / "model.safetensors").is_file()


# -- the bulk-rename dialog and the fixed rows --------------------------------------------------------


def test_the_bulk_rename_dialog_starts_in_the_pattern_and_keeps_the_changed_part_of_keys_in_view(
        make_window, qtbot, tmp_path):
    window = make_window(source=checkpoint_path("cs_s64"), output=tmp_path / "out")
    wait_open(qtbot, window)
    window.mapping_page.filter_edit.setText("self_attn.q_proj")
    table(window).setFocus()
    window.act_bulk.trigger()
    dialog = window.findChild(BulkRenameDialog)
    qtbot.waitExposed(dialog)
    # The field that has the focus when the dialog is active (as soon as the window manager makes it so).
    assert dialog.focusWidget() is dialog.pattern
    qtbot.keyClicks(dialog.focusWidget(), "q_proj")
    qtbot.keyClicks(dialog.replacement, "query")
    qtbot.waitUntil(lambda: dialog.preview.rowCount() == 4 and dialog.result_preview is not None)
    dialog.resize(460, 420)
    qtbot.waitUntil(lambda: dialog.preview.columnWidth(0) < 200)
    view = dialog.preview
    for row in range(view.rowCount()):
        for column, part in ((0, "q_proj"), (1, "query")):
            index = view.model().index(row, column)
            option = QStyleOptionViewItem()
            view.initViewItemOption(option)
            option.rect = view.visualRect(index)
            shown = dialog.key_delegate.displayed_text(option, index)
            whole = index.data()
            assert "…" in shown and part in shown, (whole, shown)
            assert option.fontMetrics.horizontalAdvance(shown) <= option.rect.width()
            assert whole.startswith(shown.split("…")[0]) and part in whole
    dialog.reject()


def test_eliding_a_key_keeps_the_part_a_rename_changes(qapp):
    from PySide6.QtGui import QFontMetrics

    metrics = QFontMetrics(QApplication.font())
    key = "encoder.layers.11.self_attn.q_proj.weight"
    start = key.index("q_proj")
    span = (start, start + len("q_proj"))
    assert elide_around(key, span, metrics, 10_000) == key  # room for all of it
    narrow = metrics.horizontalAdvance(key) * 2 // 3
    shown = elide_around(key, span, metrics, narrow)
    assert "q_proj" in shown and "…" in shown and metrics.horizontalAdvance(shown) <= narrow
    # A change Qt's middle elision keeps whole is elided in the middle, as the other keys are.
    head = (0, len("encoder"))
    middle = metrics.elidedText(key, Qt.TextElideMode.ElideMiddle, narrow)
    assert elide_around(key, head, metrics, narrow) == middle
    # Narrower than the changed part itself: its own ends stay.
    tiny = metrics.horizontalAdvance("q_p…oj")
    assert elide_around(key, span, metrics, tiny).startswith("q")


def test_which_rows_lists_keys_whole_or_elided_never_broken_inside_one(qtbot):
    from speechport.gui.audition.comparison_view import ComparisonView

    source = "module.encoder.layers.1.conformer_block.self_attention.query_projection.weight"
    target = "encoder.layers.1.self_attn.linear_q.weight"
    holder = QWidget()
    qtbot.addWidget(holder)
    view = ComparisonView(holder)
    view.show_fixes([{"source": source, "target": target}, {"source": "a.b", "target": "c.d"}])
    view.show_fixed_rows(True)
    holder.resize(1600, 600)
    view.resize(1600, 600)
    holder.show()
    qtbot.waitExposed(holder)
    rows = view.fixes_rows
    assert rows.text().splitlines() == [f"{source} → {target}", "a.b → c.d"]  # room for each on one line
    view.resize(300, 600)
    qtbot.waitUntil(lambda: rows.width() <= 300)
    lines = rows.text().splitlines()
    width = rows.contentsRect().width()
    assert all(rows.fontMetrics().horizontalAdvance(line) <= width for line in lines), lines
    # The long row on two lines (its key, then the arrow and the other key), each whole or elided
    # in the middle; the short one as it was.
    assert len(lines) == 3 and lines[2] == "a.b → c.d"
    first, second = lines[:2]
    assert "…" in first and source.startswith(first.split("…")[0]) and source.endswith(first.split("…")[1])
    assert second.startswith("   → ") and (second == f"   → {target}" or "…" in second)
    assert f"{source} → {target}" in rows.toolTip()


# -- the demo, and the terminal ----------------------------------------------------------------------


def test_the_demo_run_twice_replaces_its_own_folder_without_asking(run_cli, tmp_path):
    out = tmp_path / "demo"
    assert run_cli("demo", "--out", out)[0] == 0
    code, stdout, stderr = run_cli("demo", "--out", out)
    assert code == 0, stderr
    assert (out / "model.safetensors").is_file() and leftovers(tmp_path) == []
    # Another conversion's folder is not the demo's: it is refused as before.
    other = tmp_path / "other"
    assert run_cli("convert", checkpoint_path("cs_s64"), "--out", other, "--quiet")[0] == 0
    code, _, stderr = run_cli("demo", "--out", other)
    assert code == 2 and "not empty" in stderr


def test_converting_the_demo_twice_in_the_window_asks_nothing(make_window, answers, qtbot, tmp_path):
    out = tmp_path / "demo"
    window = make_window(source=DEMO_CHECKPOINT, output=out)
    wait_open(qtbot, window)
    window.convert()
    qtbot.waitUntil(lambda: window.result is not None)
    first = window.result
    window.convert()  # answers.reply is None: a question would fail the test
    qtbot.waitUntil(lambda: window.result is not None and window.result is not first)
    assert answers.questions == [] and (out / "model.safetensors").is_file()
    # Another checkpoint's folder there: the question is asked as always.
    other = make_window(source=checkpoint_path("cs_s64"), output=out)
    wait_open(qtbot, other)
    answers.reply = NO
    other.convert()
    qtbot.waitUntil(lambda: len(answers.questions) == 1)


def test_the_wavlm_x_vector_note_names_the_class_of_the_converted_head(run_cli, tmp_path):
    code, stdout, stderr = run_cli("convert", WAVLM_ASV, "--base-model", WAVLM_UPSTREAM, "--out", tmp_path / "asv",
                                   "--verify", WAVLM_CLIP)
    assert code == 0, stderr
    assert "transformers' WavLMForXVector `embeddings` is linear1" in stdout and "Wav2Vec2ForXVector" not in stdout


def test_a_wavlm_head_runs_without_torchs_mask_warning_whatever_other_threads_do_with_filters(run_cli, tmp_path,
                                                                                           monkeypatch):
    """The window compares on a worker while pyqtgraph enters and leaves warnings.catch_warnings() on the
    GUI thread, which can put back filters without the one that silences this warning: the converted
    WavLM head must not raise it at all."""
    from speechport.core.reference import wav2vec2_blocks

    folder = tmp_path / "asv"
    assert run_cli("convert", WAVLM_ASV, "--base-model", WAVLM_UPSTREAM, "--out", folder, "--quiet")[0] == 0
    monkeypatch.setattr(wav2vec2_blocks, "transformers_masks_quiet", contextlib.nullcontext)  # as if lost
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        code, _, stderr = run_cli("compare", WAVLM_ASV, folder, "--audio", WAVLM_CLIP, "--base-model", WAVLM_UPSTREAM)
    assert code == 0, stderr
    assert not [str(w.message) for w in caught if "key_padding_mask" in str(w.message)]


QUIET_SCRIPT = r"""
import sys
from pathlib import Path
from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QApplication
from speechport.gui import MainWindow
from speechport.gui.shared.heartbeat import run_until

work = Path(sys.argv[1])
app = QApplication([])


def audition(source, base_model, clip, out):
    window = MainWindow(source=source, base_model=base_model, output=out,
                        settings=QSettings(str(work / "settings.ini"), QSettings.Format.IniFormat))
    window.show()
    assert run_until(lambda: not window.busy() and window.prepared is not None, 300), window.message_bar.text.text()
    window.convert()
    assert run_until(lambda: not window.busy() and window.result is not None, 300), window.message_bar.text.text()
    page = window.show_audition()
    page.choose_clip(clip)
    assert run_until(lambda: page.clip is not None, 120)
    page.compare()
    assert run_until(lambda: not page.comparing() and page.comparison is not None, 300)
    window.close()
    return page.comparison.clips[0].verdict


print(audition(sys.argv[2], None, sys.argv[3], work / "demo"), audition(*sys.argv[4:7], work / "asv"))
"""


def test_the_window_keeps_the_terminal_free_of_torchs_and_qts_warnings(tmp_path):
    """The window's demo path and a WavLM head comparison, in a fresh process as `speechport gui` runs."""
    done = subprocess.run(
        [sys.executable, "-c", QUIET_SCRIPT, str(tmp_path), str(DEMO_CHECKPOINT), str(DEMO_CLIPS[0]),
         str(WAVLM_ASV), str(WAVLM_UPSTREAM), str(WAVLM_CLIP)],
        capture_output=True, text=True, timeout=600, env={**os.environ, "QT_QPA_PLATFORM": "offscreen"})
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split() == ["pass", "pass"]
    assert "key_padding_mask" not in done.stderr and "commitData" not in done.stderr, done.stderr[-3000:]


def test_the_part_a_rename_changes_is_whole_parts_of_the_key():
    from speechport.gui.mapping.rename_preview import changed_span

    def parts(before, after):
        (start, end), (start_after, end_after) = changed_span(before, after)
        return before[start:end], after[start_after:end_after]

    assert parts("encoder.layers.0.self_attn.q_proj.weight", "encoder.layers.0.self_attn.query.weight") == (
        "q_proj", "query")
    assert parts("module.encoder.layers.1.ffn2_ln.weight", "module.encoder.layers.1.ffn2_layer_norm.weight") == (
        "ffn2_ln", "ffn2_layer_norm")
    assert parts("backbone.encoder.w", "encoder.w") == ("backbone.", "")  # a prefix stripped
    assert parts("encoder/layers/1/w", "encoder.layers.1.w") == ("encoder/layers/1/", "encoder.layers.1.")
