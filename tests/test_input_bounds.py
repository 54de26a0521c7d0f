"""Bounds on what users give: nesting of mapping files and configs, the work of their patterns,
the numbers on the command line, the length of what a message quotes, and warnings that are not ours.

Every case is built here and its exact outcome asserted: the exit code, the one line on stderr,
nothing written. Nothing is decided by a clock: patterns are refused by their shape or by the work
counted before they run.
"""

import json
import re
import subprocess
import sys
import warnings

import numpy as np
import pytest
import soundfile
import torch

from speechport.core.demo import DEMO_CLIPS
from speechport.core.errors import QUOTED_LIMIT, BadInput, quoted
from speechport.core.planning.rules import (
    MAX_USER_PATTERN_CHARS,
    USER_PATTERN_WORK,
    compile_user_pattern,
)
from speechport.core.proof.audio import MODEL_RATE, load_clip
from speechport.core.storage.strict_json import MAX_NESTING

from support import checkpoint_path, load_fs2

DEMO_CLIP = DEMO_CLIPS[0]  # 66,584 samples at 16 kHz: 4.1615 s
DEEP = 100_000  # far past the interpreter's recursion limit


def run_speechport(*args, timeout=180):
    """The CLI in a child process: a hang fails the test by its timeout instead of hanging the suite."""
    done = subprocess.run([sys.executable, "-m", "speechport", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout)
    return done.returncode, done.stdout, done.stderr


def one_line(stderr: str) -> str:
    assert stderr.count("\n") == 1 and stderr.startswith("speechport: error: "), stderr[:500]
    return stderr.removeprefix("speechport: error: ").rstrip("\n")


def with_extra_key(tmp_path, key: str):
    state = load_fs2("cs_s64")
    state[key] = torch.zeros(1)
    source = tmp_path / "model.pt"
    torch.save({"model": state}, source)
    return source, list(state)


# -- 1. nesting --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, text",
    [
        ("fixes.json", '{"rename": ' + "[" * DEEP + "]" * DEEP + "}"),
        ("fixes.toml", "rename = " + "[" * DEEP + "]" * DEEP + "\n"),
        ("fixes.toml", "rename = " + "{a = " * DEEP + "1" + "}" * DEEP + "\n"),
    ],
    ids=["JSON arrays", "TOML arrays", "TOML inline tables"],
)
def test_a_mapping_file_nested_past_any_need_is_one_line_of_bad_input(run_cli, tmp_path, name, text):
    mapping = tmp_path / name
    mapping.write_text(text)
    code, stdout, stderr = run_cli("inspect", checkpoint_path("cs_s64"), "--mapping", mapping)
    assert code == 2 and stdout == ""
    assert one_line(stderr) == (f"{mapping}: the mapping file nests lists or tables more than {MAX_NESTING} levels "
                                "deep, deeper than any such file needs")


def test_the_nesting_limit_is_where_the_refusal_starts(run_cli, tmp_path):
    # The file itself is one level: "rename" nested n deep makes n + 1.
    def nested(levels: int) -> str:
        inner = levels - 1
        return '{"rename": ' + "[" * inner + "]" * inner + "}"

    at_limit, past_limit = tmp_path / "at.json", tmp_path / "past.json"
    at_limit.write_text(nested(MAX_NESTING))
    past_limit.write_text(nested(MAX_NESTING + 1))
    code, _, stderr = run_cli("inspect", checkpoint_path("cs_s64"), "--mapping", at_limit)
    assert code == 2 and one_line(stderr) == f"{at_limit}: [rename] must map source keys to strings"
    code, _, stderr = run_cli("inspect", checkpoint_path("cs_s64"), "--mapping", past_limit)
    assert code == 2 and f"more than {MAX_NESTING} levels deep" in one_line(stderr)


def test_a_config_nested_past_any_need_is_one_line_of_bad_input(run_cli, tmp_path):
    config = tmp_path / "config.json"
    config.write_text('{"model_type": "wav2vec2-bert", "x": ' + "[" * DEEP + "]" * DEEP + "}")
    code, stdout, stderr = run_cli("inspect", checkpoint_path("cs_s64"), "--config", config, "--json")
    assert code == 2
    assert one_line(stderr) == (f"{config}: the config nests lists or tables more than {MAX_NESTING} levels deep, "
                                "deeper than any such file needs")
    assert json.loads(stdout)["error"]["kind"] == "bad_input"


# -- 2. the work of user patterns ---------------------------------------------------------------------


def test_patterns_over_the_work_budget_are_refused_before_any_of_them_runs(run_cli, tmp_path, monkeypatch):
    # 200 rules, and one key long enough that reading every key once per rule is over the budget.
    source, keys = with_extra_key(tmp_path, "k" * (USER_PATTERN_WORK // 200))
    mapping = tmp_path / "fixes.toml"
    mapping.write_text("".join(f"[[rules]]\nmatch = '^nothing{i}$'\ndrop = 'x'\n" for i in range(200)))
    from speechport.core.planning import rules

    ran = []
    monkeypatch.setattr(rules, "user_search", lambda *args, **kwargs: ran.append(args))
    code, stdout, stderr = run_cli("inspect", source, "--mapping", mapping)
    work = 200 * sum(len(key) + 1 for key in keys)
    assert work > USER_PATTERN_WORK and code == 2 and stdout == "" and ran == []
    assert one_line(stderr) == (
        f"the mapping file's 200 pattern(s) would read {work:,} characters of the checkpoint's {len(keys):,} keys, "
        f"more than the {USER_PATTERN_WORK:,} one plan may read; use fewer rules (one pattern can match many keys), "
        "or [rename] entries for single keys"
    )


def test_two_hundred_rules_on_an_ordinary_checkpoint_run(run_cli, tmp_path):
    mapping = tmp_path / "fixes.toml"
    mapping.write_text("".join(f"[[rules]]\nmatch = '^nothing{i}\\.'\ndrop = 'x'\n" for i in range(199))
                       + "[[rules]]\nmatch = '^encoder_frontend\\.model_dim_proj\\.weight$'\ndrop = 'dropped on purpose'\n")
    code, stdout, _ = run_cli("inspect", checkpoint_path("cs_s64"), "--mapping", mapping, "--json")
    rows = {row["source_key"]: row for row in json.loads(stdout)["plan"]["rows"]}
    assert code == 3 and rows["encoder_frontend.model_dim_proj.weight"]["reason"] == "dropped on purpose"


@pytest.mark.parametrize(
    "match, replace",
    [("^", "x" * 10), ("^", "x" * MAX_USER_PATTERN_CHARS), (".", "\\g<0>" * (MAX_USER_PATTERN_CHARS // 5))],
    ids=["ten characters before every key", "a thousand before every key", "every character two hundred times"],
)
def test_renames_that_lengthen_keys_are_stopped_by_the_counted_budget(tmp_path, match, replace):
    # Four hundred source rules, each renaming what the one before it made: few patterns and an
    # ordinary checkpoint (nowhere near the budget before they run), but every rule lengthens every
    # key, and the rules after it read the longer keys. Refused before a rename could pass the budget.
    mapping = tmp_path / "fixes.toml"
    mapping.write_text("".join(f"[[source_rules]]\nmatch = '{match}'\nreplace = '{replace}'\n" for _ in range(400)))
    code, stdout, stderr = run_speechport("inspect", checkpoint_path("cs_s64"), "--mapping", mapping)
    line = one_line(stderr)
    assert code == 2 and stdout == "" and len(line) < 4 * QUOTED_LIMIT
    assert line.startswith(f"mapping rule: {quoted(replace)} in place of each match of {quoted(match)} could make "
                           "a key of ")
    assert line.endswith(f"characters left of the {USER_PATTERN_WORK:,} one plan may read; simplify the rule")


@pytest.mark.parametrize(
    "pattern, shape",
    [
        (r"^(a+)+$", "repeats a repetition"),
        (r"(?:x*)*", "repeats a repetition"),
        (r"^(a|aa)+$", "can split a key among its repetitions"),
        (r"^(\w+\.?)+$", "can split a key among its repetitions"),
        (r"^(.*\.)*x$", "can split a key among its repetitions"),
        (r"(x.*)+y", "can split a key among its repetitions"),
        (r"(?i)^(A|ab)+$", "can split a key among its repetitions"),
    ],
)
def test_patterns_that_backtrack_exponentially_are_refused_by_their_shape(pattern, shape):
    with pytest.raises(BadInput, match=re.escape(f"rules[0]: the regular expression {pattern!r}")) as refused:
        compile_user_pattern(pattern, "rules[0]")
    assert shape in str(refused.value)


@pytest.mark.parametrize(
    "pattern",
    [r"^module\.", r"\.query\.", r"^old\.(.*)$", r"(\w+\.)*weight", r"^(\w+\.)*x$", r"(weight|bias)+",
     r"([^.]*\.)+", r"(ab*)+", r"(\d+\.)+", r"(?:_orig_mod\.|module\.)+",
     r"^encoder\.layers\.(\d+)\.self_attn\.(q|k|v)_proj\.(weight|bias)$"],
)
def test_ordinary_patterns_pass_the_shape_check(pattern):
    assert compile_user_pattern(pattern, "rules[0]").pattern == pattern


def test_a_pattern_refused_by_its_shape_never_runs_on_the_key_it_would_hang_on(tmp_path):
    # Forty dots and no 'x': (.*\.)* would try every way to share the dots among its repetitions.
    source, _ = with_extra_key(tmp_path, "." * 40)
    mapping = tmp_path / "fixes.toml"
    mapping.write_text("[[rules]]\nmatch = '^(.*\\.)*x$'\ndrop = 'x'\n")
    code, _, stderr = run_speechport("inspect", source, "--mapping", mapping, timeout=120)
    assert code == 2 and "rules[0]: the regular expression '^(.*\\\\.)*x$' repeats a group" in one_line(stderr)


@pytest.mark.parametrize("section", ["rules", "source_rules"])
def test_a_pattern_or_a_replacement_longer_than_the_limit_is_refused_in_one_short_line(run_cli, tmp_path, section):
    mapping = tmp_path / "fixes.json"
    long = "a" * (MAX_USER_PATTERN_CHARS + 1)
    for entry, what in (({"match": long, "replace": "b"}, "regular expression"),
                        ({"match": "a", "replace": long}, "replacement")):
        mapping.write_text(json.dumps({section: [entry]}))
        code, _, stderr = run_cli("inspect", checkpoint_path("cs_s64"), "--mapping", mapping)
        line = one_line(stderr)
        assert code == 2 and f"{section}[0]: the {what} 'aaa" in line and len(line) < 2 * QUOTED_LIMIT
        assert f"is {MAX_USER_PATTERN_CHARS + 1:,} characters long; a" in line
        assert line.endswith(f"may have at most {MAX_USER_PATTERN_CHARS:,}")


# -- 3. numbers on the command line -------------------------------------------------------------------


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--start", "nan"], "argument --start: 'nan' must be a finite number of seconds, 0 or more"),
        (["--start", "inf"], "argument --start: 'inf' must be a finite number of seconds, 0 or more"),
        (["--start", "-1"], "argument --start: '-1' must be a finite number of seconds, 0 or more"),
        (["--duration", "0"], "argument --duration: '0' must be a finite number above 0"),
        (["--duration", "-1"], "argument --duration: '-1' must be a finite number above 0"),
        (["--duration", "1e308"], "argument --duration: 1e+308 s is more than a comparison covers (--max-seconds "
                                  "120); shorten it, or raise --max-seconds"),
        (["--duration", "3", "--max-seconds", "2.5"], "argument --duration: 3 s is more than a comparison covers "
                                                      "(--max-seconds 2.5); shorten it, or raise --max-seconds"),
    ],
)
def test_refused_segment_numbers_are_one_line_and_exit_2(run_cli, tmp_path, flags, message):
    code, stdout, stderr = run_cli("compare", checkpoint_path("cs_s64"), tmp_path / "none", "--audio", DEMO_CLIP,
                                   *flags)
    assert code == 2 and stdout == "" and one_line(stderr) == message
    code, stdout, _ = run_cli("compare", checkpoint_path("cs_s64"), tmp_path / "none", "--audio", DEMO_CLIP,
                              *flags, "--json")
    assert code == 2 and json.loads(stdout) == {"error": {"kind": "bad_input", "message": message}}


def test_a_start_of_1e308_is_past_the_end_not_an_overflow(run_cli, tmp_path):
    out = tmp_path / "out"
    code, _, stderr = run_cli("convert", checkpoint_path("cs_s64"), "--out", out, "--verify", DEMO_CLIP,
                              "--start", "1e308")
    assert code == 2 and not out.exists()
    assert one_line(stderr) == f"{DEMO_CLIP}: the segment starts at 1e+308 s, but the clip is 4.2 s long"


def test_a_length_shown_never_rounds_past_the_number_it_is_compared_with(tmp_path):
    clip = tmp_path / "clip.wav"
    noise = np.random.default_rng(0).uniform(-0.5, 0.5, size=66584).astype(np.float32)  # 4.1615 s
    soundfile.write(clip, noise, MODEL_RATE)
    # Not "the clip is 4.2 s long": a start at 4.1615 s would look inside it.
    with pytest.raises(BadInput) as refused:
        load_clip(clip, start=4.1615)
    assert str(refused.value) == f"{clip}: the segment starts at 4.1615 s, but the clip is 4.16 s long"
    # A start inside the last sample is inside the clip: the segment is too short, not past the end.
    with pytest.raises(BadInput, match="the clip is too short"):
        load_clip(clip, start=4.16149)
    # Not "the clip is 2.0 s long; a comparison covers at most 2 s".
    longer = tmp_path / "longer.wav"
    soundfile.write(longer, noise[: int(2.04 * MODEL_RATE)], MODEL_RATE)
    with pytest.raises(BadInput, match=r"the clip is 2\.04 s long; a comparison covers at most 2 s"):
        load_clip(longer, max_seconds=2)


def test_a_limit_of_1e308_seconds_reads_the_whole_clip():
    clip = load_clip(DEMO_CLIP, max_seconds=1e308, duration=1e308)
    assert len(clip.waveform) == 66584 and clip.whole


# -- 4. what a message quotes -------------------------------------------------------------------------


def test_quoted_keeps_both_ends_within_the_limit():
    key = "module.encoder." + "x" * 1_000_000 + ".self_attn.q_proj.weight"
    shown = quoted(key)
    assert len(shown) <= QUOTED_LIMIT and shown.startswith("'module.encoder.xxx") and shown.endswith("q_proj.weight'")
    assert "…" in shown and quoted("short") == "'short'"


@pytest.mark.parametrize(
    "make, expected",
    [
        (lambda long: {"rename": {long: "a"}, "drop": {long: "b"}}, "is both renamed and dropped; keep one"),
        (lambda long: {long: {}}, "unknown section(s) 'xxxxx"),
    ],
    ids=["renamed and dropped", "unknown section"],
)
def test_a_megabyte_from_a_mapping_file_is_quoted_in_a_few_hundred_characters(run_cli, tmp_path, make, expected):
    mapping = tmp_path / "fixes.json"
    mapping.write_text(json.dumps(make("x" * 1_000_000)))
    code, _, stderr = run_cli("inspect", checkpoint_path("cs_s64"), "--mapping", mapping)
    line = one_line(stderr)
    assert code == 2 and expected in line and len(line) < len(str(mapping)) + 2 * QUOTED_LIMIT


def test_a_note_about_an_unused_entry_quotes_a_few_hundred_characters(run_cli, tmp_path):
    mapping = tmp_path / "fixes.json"
    mapping.write_text(json.dumps({"rename": {"y" * 1_000_000: "a"}}))
    code, stdout, _ = run_cli("inspect", checkpoint_path("cs_s64"), "--mapping", mapping)
    note = next(line for line in stdout.splitlines() if "matches no source key" in line)
    assert code == 0 and len(note) < 2 * QUOTED_LIMIT and "'yyyy" in note


def test_a_pattern_stopped_on_a_megabyte_key_quotes_a_few_hundred_characters_of_it(tmp_path):
    # The alternatives overlap without the shape check seeing it (the stdlib parser merges them
    # into one class); a key of digits and a '!' makes it backtrack exponentially until its limit.
    source, _ = with_extra_key(tmp_path, "1" * 1_000_000 + "!")
    mapping = tmp_path / "fixes.toml"
    mapping.write_text("[[rules]]\nmatch = '(\\d|[0-5])+$'\ndrop = 'x'\n")
    code, _, stderr = run_speechport("inspect", source, "--mapping", mapping, timeout=120)
    line = one_line(stderr)
    assert code == 2 and "mapping rule: the regular expression '(\\\\d|[0-5])+$' takes more than" in line
    assert "'1111" in line and "11!'" in line and len(line) < 3 * QUOTED_LIMIT


# -- 5. warnings that are not ours ----------------------------------------------------------------


def test_a_wavlm_head_comparison_does_not_pass_on_torchs_warning_about_transformers_masks(tmp_path):
    from speechport.cli import main
    from speechport.core.reference.wav2vec2_blocks import MISMATCHED_MASKS_WARNING

    from conftest import FIXTURES

    upstreams = FIXTURES / "s3prl_upstreams"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        code = main(["convert", str(upstreams / "downstream" / "wavlm_sid" / "dev-best.ckpt"), "--base-model",
                     str(upstreams / "upstreams" / "wavlm_base_plus" / "wavlm_base_plus.pt"), "--out",
                     str(tmp_path / "out"), "--quiet", "--verify", str(upstreams / "audio" / "speechlike_1p0s.wav")])
    assert code == 0
    assert [str(w.message) for w in caught if MISMATCHED_MASKS_WARNING in str(w.message)] == []
