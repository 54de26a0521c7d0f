"""The `speechport` command line: inspect, convert, compare, demo, gui.

Exit codes (a contract other tools rely on): 0 success; 1 a comparison failed; 2 bad input
(unreadable or unknown file, refused pickle, bad config, unusable output path, bad audio, bad
arguments, a full disk); 3 the mapping plan has problems (nothing written); 4 an unexpected
internal error (a bug: nothing is left half-written); 128+N interrupted by signal N (130 SIGINT,
143 SIGTERM, 129 SIGHUP: nothing is left half-written). torch and transformers are imported only
once a command runs, so `--help` answers at once.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from pathlib import Path

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_PLAN_PROBLEMS, EXIT_INTERNAL = 0, 1, 2, 3, 4
EXIT_BROKEN_PIPE = 128 + 13  # 128 + SIGPIPE
DEFAULT_TOLERANCE = 5e-3  # kept equal to core.comparison.DEFAULT_TOLERANCE; here to keep --help light


class UsageError(Exception):
    """A command line argparse refuses: reported by `main` (exit 2), as JSON too with --json."""

    def __init__(self, parser: argparse.ArgumentParser, message: str):
        super().__init__(message)
        self.parser = parser

    @property
    def about_a_value(self) -> bool:
        """A value given to a flag is refused ("argument --start: 'nan' must be ..."): the line says
        all there is to say, without the usage (kept for a missing or unknown argument)."""
        return str(self).startswith("argument ")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):
        raise UsageError(self, message)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="speechport",
        description="Port speech-model checkpoints into Hugging Face transformers folders and prove, "
        "on real audio, that the ported model behaves like the original.",
        epilog="Without a command, the window opens. Exit codes: 0 ok, 1 comparison failed, "
        "2 bad input, 3 the mapping plan has problems, 4 internal error, 128+N interrupted by signal N.",
    )
    parser.add_argument("--version", action="store_true",
                        help="say Speechport's version and those of the torch, transformers and Qt it runs on")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    def audio_options(sub: argparse.ArgumentParser, required: bool) -> None:
        sub.add_argument("--tolerance", metavar="T", type=_positive_number, default=DEFAULT_TOLERANCE,
                         help=f"pass when max |diff| <= T on valid frames (default {DEFAULT_TOLERANCE:g})")
        sub.add_argument("--channels", choices=("first", "mean"), default="first",
                         help="multi-channel clips: keep the first channel (default, as fairseq2 does) or mix down")
        sub.add_argument("--original-backend", metavar="NAME", default="reference",
                         help="run the original with Speechport's reference (default) or the upstream library "
                         "when installed: fairseq2 (conformer_shaw), s3prl (S3PRL heads)")
        sub.add_argument("--max-seconds", metavar="S", type=_positive_number, default=120.0,
                         help="refuse longer clips (attention memory grows with the square of the length)")
        sub.add_argument("--start", metavar="SECONDS", type=_non_negative_number, default=0.0,
                         help="compare from this point of each clip (default: its beginning)")
        sub.add_argument("--duration", metavar="SECONDS", type=_positive_number, default=None,
                         help="compare this many seconds of each clip (default: to its end, at most --max-seconds)")

    def mismatch_option(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("--base-model-mismatch-ok", action="store_true",
                         help="use a base model of another family or layer count than the upstream the S3PRL head "
                              "records (Args.upstream, its Featurizer); the report and the model card say so")

    def cache_option(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("--no-cache", action="store_true",
                         help="build the target model with transformers instead of reading it from the user cache, "
                              "and hash the source again (nothing is read from or written to the cache)")

    def dictionary_option(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("--dictionary", metavar="FILE", help="the symbols a speech recognition (CTC) model writes, "
                         "as fairseq's dict.ltr.txt, when the checkpoint holds none and none lies beside it")

    def testset_options(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("--dataset", metavar="DATASET", help="compare on every clip of a test set instead of --audio: "
                         "a folder of clips (with metadata.csv or metadata.jsonl), a CSV, TSV or JSONL manifest, a "
                         "fairseq .tsv manifest, a Kaldi wav.scp or a speaker-verification trial list")
        sub.add_argument("--report", metavar="DIR", help="where the test set's results.jsonl, summary.json and "
                         "report.html go (default: DATASET's name with -report, in the current folder)")
        sub.add_argument("--workers", metavar="N", type=_positive_whole_number, default=None,
                         help="worker processes, each with both models (default: the number of cores; with --ray, "
                         "the cluster's CPUs)")
        sub.add_argument("--ray", metavar="ADDRESS", nargs="?", const="", default=None,
                         help="run the workers as actors on the Ray cluster at ADDRESS (without one: a local Ray "
                         'instance); needs pip install "speechport[ray]"')
        sub.add_argument("--resume", action="store_true", help="continue a stopped run in --report DIR, skipping "
                         "clips whose file and models have not changed")
        sub.add_argument("--label-column", metavar="NAME", help="the column holding each clip's label (default: label)")
        sub.add_argument("--text-column", metavar="NAME", help="the column holding each clip's reference text, for a "
                         "speech recognition model's error rates (default: text)")

    def source_options(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("source", metavar="SOURCE", help="checkpoint file (.pt, .ckpt, .safetensors)")
        sub.add_argument("--config", metavar="F", help="target config.json (default: inferred from the checkpoint)")
        sub.add_argument("--mapping", metavar="F", help="mapping fixes (JSON or TOML: rename, drop, rules, source_rules)")
        sub.add_argument("--base-model", metavar="DIR_OR_FILE",
                         help="the upstream model an S3PRL head was trained on: a transformers folder, or its "
                              "original checkpoint file (fairseq, Microsoft or S3PRL), converted along with the head")
        sub.add_argument("--labels", metavar="FILE", help="class names, one per line, in class-index order (classification heads)")
        dictionary_option(sub)
        sub.add_argument("--recipe", metavar="NAME", help="skip detection and use this recipe")
        mismatch_option(sub)
        cache_option(sub)
        sub.add_argument("--trust-pickle", action="store_true", help="load a pickle that needs globals beyond "
                         "the safe allow-list (this can run code from the file: only for files you trust)")
        sub.add_argument("--json", action="store_true", help="print a JSON document on stdout")

    inspect = commands.add_parser("inspect", help="detect the recipe, settle the config and show the mapping plan")
    source_options(inspect)
    inspect.add_argument("--rows", action="store_true", help="print every plan row, not only the problems")

    convert = commands.add_parser("convert", help="convert a checkpoint into a transformers folder")
    source_options(convert)
    convert.add_argument("--out", metavar="DIR", required=True, help="output folder (created atomically)")
    convert.add_argument("--force", action="store_true", help="replace a non-empty output folder once the new one is complete")
    convert.add_argument("--max-shard-size", metavar="SIZE", default=None, type=_shard_size,
                         help="shard the weights above this size: bytes, or a number with a unit, e.g. 5GB (default 50GB)")
    convert.add_argument("--quiet", action="store_true", help="no progress bar")
    convert.add_argument("--verify", metavar="CLIP", action="append", default=[],
                         help="compare the original and the converted model on this clip once written "
                         "(repeatable); the result goes into the report and the model card")
    audio_options(convert, required=False)

    compare = commands.add_parser("compare", help="run the original and the converted model on clips and compare them")
    compare.add_argument("source", metavar="SOURCE", help="the original checkpoint")
    compare.add_argument("converted", metavar="CONVERTED_DIR", help="the converted transformers folder")
    compare.add_argument("--audio", metavar="CLIP", action="append", help="clip to compare on (repeatable)")
    testset_options(compare)
    compare.add_argument("--save-outputs", metavar="DIR", help="write DIR/<clip>.safetensors with the compared outputs")
    compare.add_argument("--base-model", metavar="DIR_OR_FILE",
                         help="the upstream model an S3PRL head was trained on: a transformers folder, or its "
                              "original checkpoint file (fairseq, Microsoft or S3PRL), run as the original's upstream")
    compare.add_argument("--mapping", metavar="F", help="the fixes the conversion used (default: those recorded in "
                         "CONVERTED_DIR/speechport_report.json)")
    mismatch_option(compare)
    dictionary_option(compare)
    compare.add_argument("--trust-pickle", action="store_true", help="load a source pickle beyond the safe allow-list")
    compare.add_argument("--json", action="store_true", help="print a JSON document on stdout")
    compare.add_argument("--quiet", action="store_true", help="no progress bar")
    audio_options(compare, required=True)
    cache_option(compare)
    parser.compare_parser = compare  # its usage, for the checks argparse cannot make (_check_compare_inputs)

    demo = commands.add_parser("demo", help="convert the built-in demo checkpoint and reload it with transformers")
    demo.add_argument("--out", metavar="DIR", help="keep the converted folder here (default: a temporary folder)")
    demo.add_argument("--force", action="store_true", help="replace a non-empty --out folder")
    demo.add_argument("--json", action="store_true", help="print a JSON document on stdout")

    cache = commands.add_parser("cache", help="show or clear what Speechport keeps in the user cache")
    cache.add_argument("action", choices=("info", "clear"), nargs="?", default="info",
                       help="info (default): where the cache is and what it holds; clear: remove it all")
    cache.add_argument("--json", action="store_true", help="print a JSON document on stdout")

    witness = commands.add_parser("witness", help="install, list or remove genuine upstream libraries that run the "
                                  "original model in an interpreter of their own (--original-backend)")
    witness_actions = witness.add_subparsers(dest="witness_action", metavar="ACTION", required=True)
    install = witness_actions.add_parser("install", help="create the witness's environment (fairseq2: about 5.1 GB)")
    install.add_argument("name", metavar="NAME", help="the witness: fairseq2")
    install.add_argument("--python", metavar="PATH", help="the Python to build it on (fairseq2: 3.8 to 3.11; "
                         "default: this one if it fits, else the newest python3.X on the PATH that does)")
    install.add_argument("--with-seamless", metavar="SPEC", help="also install seamless_communication's code, "
                         "without its dependencies, from SPEC (a local source folder or a VCS URL, as pip takes it)")
    install.add_argument("--quiet", action="store_true", help="no progress lines")
    install.add_argument("--json", action="store_true", help="print a JSON document on stdout")
    listed = witness_actions.add_parser("list", help="the witnesses, their versions, and whether they still work")
    listed.add_argument("--json", action="store_true", help="print a JSON document on stdout")
    remove = witness_actions.add_parser("remove", help="remove an installed witness")
    remove.add_argument("name", metavar="NAME", help="the witness: fairseq2")
    remove.add_argument("--json", action="store_true", help="print a JSON document on stdout")

    gui = commands.add_parser("gui", help="open the Speechport window")
    gui.add_argument("source", metavar="SOURCE", nargs="?", help="checkpoint to open")
    gui.add_argument("--config", metavar="F")
    gui.add_argument("--base-model", metavar="DIR_OR_FILE")
    gui.add_argument("--out", metavar="DIR")
    gui.add_argument("--demo", action="store_true", help="open the built-in demo (without a display: run it in the terminal)")
    return parser


def _non_negative_number(text: str) -> float:
    """argparse type of --start: a finite number of seconds, 0 or more."""
    import math

    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be a finite number of seconds, 0 or more")
    return value


def _positive_number(text: str) -> float:
    """argparse type of --tolerance and --max-seconds: a finite number above 0 (nan, inf, 0, -1 refused)."""
    import math

    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be a finite number above 0")
    return value


def _check_segment_flags(parser: argparse.ArgumentParser, args) -> None:
    """--duration longer than --max-seconds asks for more than a comparison covers, whatever the clip."""
    duration, limit = getattr(args, "duration", None), getattr(args, "max_seconds", None)
    if duration is not None and limit is not None and duration > limit:
        from .core.proof.audio import seconds_as_given

        raise UsageError(parser, f"argument --duration: {seconds_as_given(duration)} s is more than a comparison "
                                 f"covers (--max-seconds {seconds_as_given(limit)}); shorten it, or raise --max-seconds")


def _positive_whole_number(text: str) -> int:
    """argparse type of --workers: a whole number above 0."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be a whole number above 0")
    return value


def _check_compare_inputs(parser: argparse.ArgumentParser, args) -> None:
    """compare takes --audio clips or one --dataset, and the test-set flags only with --dataset."""
    if getattr(args, "command", None) != "compare":
        return
    usage = parser.compare_parser
    if args.audio and args.dataset:
        raise UsageError(usage, "argument --dataset: not allowed with argument --audio")
    if not args.audio and not args.dataset:
        raise UsageError(usage, "one of the arguments --audio --dataset is required")
    if args.dataset and args.save_outputs:
        raise UsageError(usage, "argument --save-outputs: not allowed with argument --dataset (a test set's "
                                "results are in --report DIR)")
    if not args.dataset:
        for flag, value in (("--report", args.report), ("--workers", args.workers), ("--ray", args.ray),
                            ("--resume", args.resume or None), ("--label-column", args.label_column),
                            ("--text-column", args.text_column)):
            if value is not None:
                raise UsageError(usage, f"argument {flag}: only with --dataset")


def _shard_size(text: str) -> int:
    from .core.errors import BadInput
    from .core.storage.safetensors_writer import parse_size

    try:
        return parse_size(text)
    except BadInput as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        _check_segment_flags(parser, args)
        _check_compare_inputs(parser, args)
    except UsageError as error:
        if error.about_a_value:
            print(f"speechport: error: {error}", file=sys.stderr)
        else:
            error.parser.print_usage(sys.stderr)
            print(f"{error.parser.prog}: error: {error}", file=sys.stderr)
        if "--json" in argv:
            _print_json({"error": {"kind": "bad_input", "message": str(error)}})
        return EXIT_BAD_INPUT
    if args.version:
        from .core.versions import version_lines

        print("\n".join(version_lines()))
        return EXIT_OK
    handlers = {"inspect": _inspect, "convert": _convert, "compare": _compare, "demo": _demo, "cache": _cache,
                "witness": _witness, "gui": _gui, None: _gui}
    if args.command is None:
        args.source = args.config = args.base_model = args.out = None
        args.demo = False
    if args.command == "convert" and Path(args.source).is_file():
        from .core.storage.hashing import BackgroundHash

        # Checksumming a multi-GB file takes about as long as copying it: start now, to overlap the two.
        # --no-cache: no digest read or kept; without it, SPEECHPORT_NO_CACHE decides, as for the targets.
        args.early_hash = BackgroundHash(args.source, use_cache=False if args.no_cache else None)
    else:
        args.early_hash = None
    # Ctrl+C, SIGTERM and SIGHUP unwind the command like an exception, so a staged output folder is
    # removed on the way out; the window handles its own signals.
    restore_signals = _signals_interrupt() if args.command not in (None, "gui") else None
    try:
        if getattr(args, "no_cache", False):
            from .core.planning.target_cache import CACHE

            with CACHE.disabled():
                return _run_command(handlers[args.command], args)
        return _run_command(handlers[args.command], args)
    except KeyboardInterrupt as interrupt:
        return _interrupted(interrupt, args)
    finally:
        if args.early_hash is not None:
            args.early_hash.cancel()  # a no-op once the digest is known
        if restore_signals is not None:
            restore_signals()


def _run_command(handler, args) -> int:
    from .core.errors import SpeechportError

    try:
        return handler(args)
    except SpeechportError as error:
        _error_line(error)
        if getattr(args, "json", False):
            _print_json({"error": {"kind": error.kind, "message": error.for_cli()}})
        return error.exit_code
    except BrokenPipeError:
        # Whoever read stdout stopped reading (`speechport inspect ... | head`): nothing is wrong and
        # nobody is left to tell; exit as a shell reports a process that SIGPIPE ended.
        _silence_stdout()
        return EXIT_BROKEN_PIPE
    except Exception as error:  # noqa: BLE001 - the last line of defence: one line, no traceback
        if os.environ.get("SPEECHPORT_DEBUG"):
            raise
        message = f"{type(error).__name__}: {_first_line(error)}"
        _clear_progress_line()
        print(f"speechport: internal error: {message} (set SPEECHPORT_DEBUG=1 to see the traceback)", file=sys.stderr)
        if getattr(args, "json", False):
            _print_json({"error": {"kind": "internal", "message": message}})
        return EXIT_INTERNAL


class _Signalled(KeyboardInterrupt):
    """SIGINT, SIGTERM or SIGHUP, raised in the main thread so that every cleanup on the way out runs."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


def _signals_interrupt():
    """Make SIGINT, SIGTERM and SIGHUP raise `_Signalled` once; returns what puts the previous handlers back.

    Only the first signal raises: later ones arrive while the cleanup it started is running, and
    must not cut it short. Signals that were ignored when the command started (nohup) stay ignored.
    """
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    raised: list[int] = []

    def handler(signum, frame):
        if not raised:
            raised.append(signum)
            raise _Signalled(signum)

    previous = {}
    for name in ("SIGINT", "SIGTERM", "SIGHUP"):
        signum = getattr(signal, name, None)
        if signum is None or signal.getsignal(signum) == signal.SIG_IGN:
            continue
        previous[signum] = signal.signal(signum, handler)

    def restore() -> None:
        for signum, old in previous.items():
            signal.signal(signum, old if old is not None else signal.SIG_DFL)

    return restore


def _interrupted(interrupt: KeyboardInterrupt, args) -> int:
    signum = int(getattr(interrupt, "signum", signal.SIGINT))
    message = f"interrupted by {signal.Signals(signum).name}; nothing was left half-written"
    if getattr(interrupt, "written", None):  # `compare --save-outputs` had finished some files
        from .core.proof.verification import describe_written

        message += f"; {describe_written(interrupt.written)}"
    if getattr(interrupt, "kept", None):  # `compare --dataset`: what is done stays, for --resume
        message += f"; {interrupt.kept} (--resume)"
    _clear_progress_line()
    print(f"speechport: {message}", file=sys.stderr)
    if getattr(args, "json", False):
        _print_json({"error": {"kind": "interrupted", "message": message}})
    return 128 + signum


# -- commands -------------------------------------------------------------------------------


def _base_model_consent(args):
    """--base-model-mismatch-ok: heads opened within are accepted on a base model other than the upstream they record."""
    import contextlib

    if not getattr(args, "base_model_mismatch_ok", False):
        return contextlib.nullcontext()
    from .core.families.s3prl_heads.identity import mismatch_accepted

    return mismatch_accepted()


def _inspect(args) -> int:
    from .core.conversion import prepare

    with _base_model_consent(args):
        prepared = prepare(args.source, config=args.config, mapping=args.mapping, base_model=args.base_model,
                           labels=args.labels, recipe=args.recipe, trust_pickle=args.trust_pickle,
                           dictionary=args.dictionary)
    prepared.hasher.cancel()
    if args.json:
        _print_json(_prepared_json(prepared))
    else:
        _print_prepared(prepared, rows=args.rows)
    return EXIT_OK if prepared.plan.ok else EXIT_PLAN_PROBLEMS


def _convert(args) -> int:
    from .core.conversion import convert, prepare
    from .core.errors import PlanProblems
    from .core.proof.audio import load_clip
    from .core.storage.output_folder import check_output_path, protected_inputs
    from .core.storage.safetensors_writer import DEFAULT_MAX_SHARD_SIZE

    inputs = protected_inputs(source=args.source, config=args.config, mapping=args.mapping, base_model=args.base_model,
                              labels=args.labels, clips=args.verify, dictionary=args.dictionary)
    check_output_path(args.out, args.force, inputs)  # fail before reading a multi-GB file, or destroying one
    clips = [load_clip(path, channels=args.channels, max_seconds=args.max_seconds, start=args.start,
                       duration=args.duration) for path in args.verify]
    progress = _terminal_progress(enabled=not args.quiet and not args.json)
    if args.verify:
        _quiet_transformers()
    with _base_model_consent(args):
        prepared = prepare(args.source, config=args.config, mapping=args.mapping, base_model=args.base_model,
                           labels=args.labels, recipe=args.recipe, trust_pickle=args.trust_pickle, progress=progress,
                           hasher=args.early_hash, dictionary=args.dictionary)
    try:
        result = convert(prepared, args.out, force=args.force,
                         max_shard_size=args.max_shard_size or DEFAULT_MAX_SHARD_SIZE, progress=progress,
                         verify=clips, tolerance=args.tolerance, original_backend=args.original_backend)
    except PlanProblems as problems:
        _clear_progress_line()
        if args.json:
            _print_json({"error": {"kind": problems.kind, "message": str(problems)}, **_prepared_json(prepared)})
        else:
            _print_problems(prepared, file=sys.stderr)
        _error_line(problems)
        return EXIT_PLAN_PROBLEMS
    _clear_progress_line()
    summary = {
        "output": str(result.output),
        "recipe": prepared.recipe.name,
        "layout": prepared.layout,
        "config": prepared.config.origin,
        "plan": prepared.plan.counts(),
        "files": result.weights.files,
        "weight_bytes": result.weights.total_bytes,
        "seconds": {**{k: round(v, 3) for k, v in prepared.timings.items()}, "convert": round(result.seconds, 3)},
        # Inside "convert": writing the weights, then waiting for the source's digest (the slower of
        # the two bounds the run); the digest's own time, and whether it was known already.
        "convert_detail": {**{k: round(v, 3) for k, v in result.timings.items()},
                           "hash_from_cache": prepared.hasher.from_cache,
                           "targets_built": prepared.targets_built},
        "report": str(result.output / "speechport_report.json"),
        "verification": result.report.get("verification"),
    }
    if args.json:
        _print_json(summary)
    else:
        print(f"converted {prepared.source.name} ({prepared.recipe.name}, {prepared.layout} layout) -> {result.output}")
        print(f"  plan: {prepared.plan.summary()}")
        print(f"  wrote {', '.join(result.weights.files)} ({_human_bytes(result.weights.total_bytes)}) "
              f"in {result.seconds:.2f} s")
        if result.comparison is not None:
            _print_comparison(result.comparison)
    if result.comparison is not None and result.comparison.verdict != "pass":
        return EXIT_FAILED
    return EXIT_OK


def _compare(args) -> int:
    if args.dataset:
        return _compare_dataset(args)
    from .core.conversion import open_sides
    from .core.planning.mapping_file import Overrides
    from .core.proof.verification import compare_clips

    fixes = Overrides.load(args.mapping) if args.mapping else None
    progress = _terminal_progress(enabled=not args.quiet and not args.json)
    _quiet_transformers()
    with _base_model_consent(args):
        sides = open_sides(args.source, args.converted, base_model=args.base_model, backend=args.original_backend,
                           trust_pickle=args.trust_pickle, fixes=fixes, progress=progress, dictionary=args.dictionary)
    try:
        comparison = compare_clips(sides, args.audio, tolerance=args.tolerance, channels=args.channels,
                                   max_seconds=args.max_seconds, start=args.start, duration=args.duration,
                                   save_outputs=args.save_outputs, progress=progress)
    except BaseException:
        if sides.weights_digest is not None:
            sides.weights_digest.cancel()
        raise
    from .core.proof.record import record_comparison

    # In the folder's report and model card; a folder that cannot take it is compared all the same.
    recorded = record_comparison(sides, comparison, by="speechport compare")
    _clear_progress_line()
    if args.json:
        _print_json({**comparison.to_dict(), "source": str(Path(args.source).absolute()),
                     "converted": str(Path(args.converted).absolute()), "original_backend": comparison.original_backend,
                     "recipe": sides.detection.recipe.name, "record": recorded.to_dict()})
    else:
        _print_comparison(comparison)
        print(recorded.line())
    return EXIT_OK if comparison.verdict == "pass" else EXIT_FAILED


def _compare_dataset(args) -> int:
    from .core.conversion import open_sides
    from .core.families import detect
    from .core.planning.mapping_file import Overrides
    from .core.proof.datasets import read_dataset
    from .core.proof.testset import check_report_folder, default_report_folder, internal_errors, run_testset
    from .core.proof.testset_clip import ClipOptions, OpenModels
    from .core.storage.checkpoint import load_checkpoint

    dataset = read_dataset(args.dataset, label_column=args.label_column, text_column=args.text_column)
    folder = check_report_folder(args.report or default_report_folder(args.dataset), resume=args.resume,
                                 converted=args.converted,
                                 inputs=[p for p in (args.source, args.dataset, args.mapping, args.base_model) if p])
    fixes = Overrides.load(args.mapping) if args.mapping else None
    # The checkpoint is opened here too, so that a file no worker could open is refused before any starts.
    recipe_class = detect(load_checkpoint(args.source, trust_pickle=args.trust_pickle)).recipe
    consent = None
    if args.base_model_mismatch_ok:
        from .core.families.s3prl_heads.identity import mismatch_accepted as consent
    absolute = lambda path: str(Path(path).expanduser().absolute()) if path else None  # noqa: E731
    models = OpenModels(open_sides, absolute(args.source), absolute(args.converted), absolute(args.base_model),
                        args.original_backend, args.trust_pickle, fixes, consent,
                        dictionary=absolute(getattr(args, "dictionary", None)))
    options = ClipOptions(args.tolerance, args.channels, args.max_seconds, args.start, args.duration)
    outcome = run_testset(models, dataset, folder, options=options, recipe_class=recipe_class, workers=args.workers,
                          ray=args.ray is not None, ray_address=args.ray or None, resume=args.resume,
                          progress=_terminal_progress(enabled=not args.quiet and not args.json),
                          about={"source": models.source, "converted": models.converted,
                                 "original_backend": args.original_backend, "recipe": recipe_class.name})
    _clear_progress_line()
    summary = outcome.summary
    errors = internal_errors(outcome)
    if summary["passed"] + summary["failed"] == 0 and not errors:
        from .core.errors import BadInput

        raise BadInput(f"{dataset.path}: no clip of the test set could be compared; why, for each one, is in "
                       f"{outcome.results}")
    if args.json:
        _print_json(summary)
    else:
        _print_testset(summary, outcome.records)
    if errors:
        message = (f"{len(errors)} clip{'s' if len(errors) != 1 else ''} hit an error in Speechport (a bug): "
                   f"{errors[0]['error']} (every one is in {outcome.results})")
        print(f"speechport: internal error: {message}", file=sys.stderr)
        return EXIT_INTERNAL
    return EXIT_OK if summary["verdict"] == "pass" else EXIT_FAILED


def _print_testset(summary: dict, records: list[dict]) -> None:
    """A test set's summary as a short table, and the clips not compared with why."""
    from .core.proof.testset_summary import reason_of

    def percent(value) -> str:
        return "—" if value is None else f"{value * 100:.2f} %"

    spread = summary["max_abs_diff"]
    numbers = "  ".join(f"{name} {spread[name]:.3g}" if spread[name] is not None else f"{name} ∞"
                        for name in ("median", "p95", "p99", "worst"))
    not_compared = summary["unreadable"] + summary["errors"]
    rows = [("clips", f"{summary['clips']}: {summary['passed']} passed, {summary['failed']} failed, "
                      f"{not_compared} not compared"),
            ("max |diff|", f"{numbers}  (tolerance {summary['tolerance']:g})")]
    if summary.get("top1_agreement") is not None:
        rows.append(("top-1 agreement", f"{percent(summary['top1_agreement'])}"))
    if summary.get("accuracy_original") is not None:
        rows.append(("accuracy", f"original {percent(summary['accuracy_original'])}, converted "
                                 f"{percent(summary['accuracy_converted'])} ({summary['labelled_clips']} labelled clips)"))
    if summary.get("trials"):
        rows.append(("EER", f"original {percent(summary['eer_original'])}, converted {percent(summary['eer_converted'])}"
                            f" ({summary['trials_scored']} of {summary['trials']} trials; largest score difference "
                            + (f"{summary['score_max_abs_diff']:.3g})" if summary["score_max_abs_diff"] is not None
                               else "—)")))
    if summary.get("speaker_frame_disagreement"):
        found = summary["speaker_frame_disagreement"]
        rows.append(("speaker decisions", f"{percent(found['mean'])} of frames differ on average, "
                                          f"{percent(found['worst'])} on the worst clip"))
    from .core.proof.testset_transcripts import transcription_rows

    rows += transcription_rows(summary)
    width = max(len(name) for name, _ in rows) + 2
    for name, text in rows:
        print(f"{name:<{width}}{text}")
    if summary["worst_clips"]:
        print("worst clips:")
        for clip in summary["worst_clips"]:
            diff = f"{clip['max_abs_diff']:.3g}" if clip["max_abs_diff"] is not None else "∞"
            where = f"  first divergent layer: {clip['first_divergent_layer']}" if clip["first_divergent_layer"] else ""
            print(f"  {clip['verdict'].upper():4}  {diff:>9}  {clip['key']}{where}")
    skipped = [record for record in records if record["verdict"] not in ("pass", "fail")]
    for record in skipped[:10]:
        print(f"not compared: {record['key']}: {reason_of(record)}")
    if len(skipped) > 10:
        print(f"not compared: and {len(skipped) - 10} more (results.jsonl says why)")
    for note in summary["notes"]:
        print(f"note: {note}")
    folder = Path(summary["report_folder"]) if summary.get("report_folder") else None
    if folder is not None:
        print(f"report: {folder / 'report.html'} (results.jsonl, summary.json beside it)")
    verdict = summary["verdict"] or "none"
    print(f"verdict: {verdict} (tolerance {summary['tolerance']:g} on max |diff|)")


def _print_comparison(comparison) -> None:
    for clip in comparison.clips:
        where = f" [{clip.segment[0]:g}–{clip.segment[1]:g} s]" if clip.segment else ""
        print(f"{clip.verdict.upper():4} {Path(clip.audio).name}{where}: max |diff| {clip.max_abs_diff:.3g}, "
              f"mean |diff| {clip.mean_abs_diff:.3g}, NMSE {clip.nmse_db:.1f} dB, cosine min {clip.cosine_min:.6f}, "
              f"{clip.frames} frames (original {clip.seconds_original:.2f} s, converted {clip.seconds_converted:.2f} s)")
        if clip.first_divergent_layer:
            print(f"     first divergent layer: {clip.first_divergent_layer}")
        for note in clip.notes:
            print(f"     {note}")
    if comparison.fixes_used:
        from .core.planning.plan import collapse_indices
        from .core.proof.original_weights import fixes_sentence

        print(f"fixes: {fixes_sentence(len(comparison.fixes_used))}: "
              f"{', '.join(collapse_indices(row['source'] for row in comparison.fixes_used))}")
    if comparison.original_backend != "reference":  # the genuine library, not Speechport's own implementation
        print(f"original: {comparison.original_backend}")
    print(f"verdict: {comparison.verdict} (tolerance {comparison.tolerance:g} on max |diff|)")


def _quiet_transformers() -> None:
    """transformers' weight-loading progress bars would garble the CLI's own output."""
    from transformers.utils import logging

    logging.disable_progress_bar()


def _demo(args) -> int:
    from .core.demo import run_demo

    _quiet_transformers()
    outcome = run_demo(args.out, force=args.force, progress=_terminal_progress(enabled=not args.json))
    _clear_progress_line()
    if args.json:
        _print_json(outcome)
    else:
        for line in outcome["lines"]:
            print(line)
    return EXIT_OK if outcome["ok"] else EXIT_FAILED


def _cache(args) -> int:
    from .core.planning.target_cache import CACHE, NO_CACHE_ENV
    from .core.storage import cache_store

    root = cache_store.cache_root()
    held = cache_store.summary()  # a cache folder that is a link or another user's: bad input, nothing removed
    if args.action == "clear":
        removed, size = cache_store.clear()
        outcome = {"action": "clear", "folder": str(root), "removed_files": removed, "removed_bytes": size}
        line = f"removed {removed} cached file{'s' if removed != 1 else ''} ({_human_bytes(size)}) from {root}"
    else:
        key_problem = cache_store.key_problem()
        unused = f"{NO_CACHE_ENV} is set" if not CACHE.is_enabled() else key_problem
        targets, digests = held["targets"], held["digests"]
        outcome = {"action": "info", "folder": str(root), "targets": targets, "target_bytes": held["target_bytes"],
                   "digests": digests, "enabled": unused is None, "key": str(cache_store.key_path()),
                   "key_problem": key_problem}
        line = (f"{root}: {targets} target model{'s' if targets != 1 else ''} "
                f"({_human_bytes(held['target_bytes'])}), {digests} source digest{'s' if digests != 1 else ''}"
                + ("" if unused is None else f" (not used: {unused})"))
    if args.json:
        _print_json(outcome)
    else:
        print(line)
    return EXIT_OK


def _witness(args) -> int:
    from .core.witnesses import environments

    if args.witness_action == "list":
        entries = environments.listing()
        if args.json:
            _print_json({"witnesses": entries})
            return EXIT_OK
        for entry in entries:
            if not entry["installed"]:
                state = "not installed" + (f" (speechport witness install {entry['name']})"
                                           if entry["kind"] == "environment" else "")
            elif entry["works"]:
                versions = ", ".join(f"{k} {v}" for k, v in (entry["versions"] or {}).items())
                state = "works" + (f": {versions}" if versions else "")
            else:
                state = f"broken: {entry['problem']} (speechport witness install {entry['name']})"
            where = f" in {entry['folder']}" if entry["installed"] and entry["folder"] else ""
            print(f"{entry['name']}{where} — {state}")
        return EXIT_OK
    spec = environments.spec_named(args.name)
    if args.witness_action == "remove":
        folder = environments.remove(spec.name)
        if args.json:
            _print_json({"action": "remove", "name": spec.name, "removed": str(folder) if folder else None})
        else:
            print(f"removed the {spec.name} witness ({folder})" if folder else f"no {spec.name} witness is installed")
        return EXIT_OK
    python = environments.choose_python(spec, args.python)
    folder = environments.witnesses_home() / spec.name
    environments.check_free_space(folder.parent, spec)  # refused before anything is said to begin
    if not args.json and not args.quiet:
        print(f"installing {spec.title} as a witness in {folder} with {python}: about {spec.disk_bytes / 1e9:.1f} GB "
              f"({spec.why_so_large}), about {spec.minutes:g} minutes with pip's cache warm; Ctrl+C stops it and "
              "leaves nothing", file=sys.stderr)
    witness = environments.install(spec.name, python=python, with_seamless=args.with_seamless,
                                   progress=_line_progress(enabled=not args.quiet and not args.json))
    versions = witness.manifest.get("versions") or {}
    if args.json:
        _print_json({"action": "install", "name": spec.name, "folder": str(witness.folder), "versions": versions,
                     "with_seamless": args.with_seamless, "works": True})
    else:
        print(f"installed the {spec.name} witness in {witness.folder}: "
              + ", ".join(f"{k} {v}" for k, v in versions.items())
              + (f"; seamless_communication from {args.with_seamless}" if args.with_seamless else ""))
    return EXIT_OK


def _line_progress(enabled: bool):
    """Progress for a long job told in lines (an install): each stage and each line it logs, on stderr."""
    from .core.progress import Progress

    if not enabled:
        return Progress()
    said = {"stage": None}

    def show(event) -> None:
        if event.message:
            print(f"  {event.message}", file=sys.stderr)
        elif event.stage != said["stage"]:
            said["stage"] = event.stage
            print(f"speechport: {event.stage}", file=sys.stderr)

    return Progress(show, min_interval=0.0)


def _display_available() -> bool:
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")) or sys.platform in ("win32", "darwin")


def _gui(args) -> int:
    if not _display_available():
        if args.demo or args.command is None:
            print("speechport: no display found; running the demo conversion in the terminal instead", file=sys.stderr)
            return _demo(argparse.Namespace(out=None, force=False, json=False))
        from .core.errors import BadInput

        raise BadInput("no display found: the window needs a desktop session (set DISPLAY or WAYLAND_DISPLAY)")
    from .gui.app import run_window

    return run_window(source=args.source, config=args.config, base_model=args.base_model, output=args.out, demo=args.demo)


# -- output ---------------------------------------------------------------------------------


def _prepared_json(prepared) -> dict:
    return {
        "source": str(prepared.source),
        "recipe": prepared.recipe.name,
        "layout": prepared.layout,
        "evidence": prepared.detection.evidence,
        "config": {
            "origin": prepared.config.origin,
            "path": prepared.config.path,
            "inferred": prepared.config.inferred,
            "values": prepared.config.config.to_diff_dict(),
        },
        "ok": prepared.plan.ok,
        "plan": prepared.plan.to_dict(),
        "suggestions": {source: [s.to_dict() for s in found] for source, found in prepared.suggestions().items()},
    }


def _print_prepared(prepared, rows: bool, file=None) -> None:
    out = file or sys.stdout
    plan = prepared.plan
    print(f"source:  {prepared.source}", file=out)
    print(f"recipe:  {prepared.recipe.name} ({prepared.layout} layout): {prepared.detection.evidence}", file=out)
    choice = prepared.config
    if choice.origin == "file":
        print(f"config:  {choice.path}", file=out)
    else:
        print("config:  inferred from the checkpoint", file=out)
        for name, value in choice.inferred.items():
            print(f"           {name} = {value}", file=out)
    print(f"target:  {plan.target_class}", file=out)
    print(f"plan:    {plan.summary()}", file=out)
    for note in plan.notes:
        print(f"note:    {note}", file=out)
    if rows:
        for row in plan.rows:
            source = row.source_key or "-"
            target = row.target_key or "-"
            shape = list(row.source_shape) if row.source_shape is not None else "-"
            detail = f"  ({row.reason})" if row.reason and row.status.value != "mapped" else ""
            print(f"  {row.status.value:16} {source} {shape} -> {target}{detail}", file=out)
    _print_problems(prepared, file=out)


def _print_problems(prepared, file) -> None:
    plan = prepared.plan
    problems = plan.problem_lines()
    if not problems:
        print("no problems: ready to convert", file=file)
        return
    print(f"problems ({plan.summary()}):", file=file)
    for line in problems:
        print(f"  {line}", file=file)
    for source, found in prepared.suggestions().items():
        if found:
            best = found[0]
            fit = "same shape" if best.shape_matches else "another shape"
            sure = ", confident" if best.confident else ""
            print(f"did you mean: {source} -> {best.target} ({fit}{sure})", file=file)
    for hint in plan.problem_hints():
        print(f"hint: {hint}", file=file)


def _terminal_progress(enabled: bool):
    from .core.progress import Progress

    if not enabled or not sys.stderr.isatty():
        return Progress()

    def show(event) -> None:
        width = 30
        filled = int(event.fraction * width)
        bar = "#" * filled + "." * (width - filled)
        detail = ""
        if event.bytes_total:
            detail = f" {_human_bytes(event.bytes_done)}/{_human_bytes(event.bytes_total)}"
        eta = f" ETA {event.eta:.0f}s" if event.eta is not None and event.fraction < 1 else ""
        sys.stderr.write(f"\r[{bar}] {event.fraction * 100:3.0f}% {event.stage}{detail}{eta}\033[K")
        sys.stderr.flush()

    return Progress(show, min_interval=0.1)


def _clear_progress_line() -> None:
    if sys.stderr.isatty():
        sys.stderr.write("\r\033[K")
        sys.stderr.flush()


def _error_line(error) -> None:
    _clear_progress_line()
    print(f"speechport: error: {error.for_cli()}", file=sys.stderr)


def _print_json(data) -> None:
    from .core.storage.strict_json import dumps

    print(dumps(data, indent=2))


def _first_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return lines[0][:300] if lines else ""


def _human_bytes(nbytes: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if abs(nbytes) < 1000 or unit == "GB":
            return f"{nbytes:.0f} {unit}" if unit == "B" else f"{nbytes:.1f} {unit}"
        nbytes /= 1000
    return ""


def run() -> None:
    """Console entry point: run a command, then leave without the interpreter's teardown.

    With torch and transformers loaded, tearing the interpreter down takes about 0.6 s and does
    nothing a finished command needs: every file has been closed, so flush stdio and exit.
    """
    import multiprocessing

    # A packaged app starts a test set's worker processes as the app itself: this makes them workers.
    multiprocessing.freeze_support()
    code = main()
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        code = EXIT_BROKEN_PIPE
    try:
        sys.stderr.flush()
    except BrokenPipeError:
        pass
    os._exit(code)


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so that what is still buffered for a closed pipe is dropped quietly."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass


if __name__ == "__main__":
    run()
