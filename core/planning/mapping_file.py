"""A user's fixes to a mapping plan, saved as a JSON or TOML file (`--mapping FILE`).

    # my-fixes.toml
    [rename]                       # source key = target key
    "encoder.layers.0.extra.weight" = "encoder.layers.0.ffn1.intermediate_dense.weight"
    [drop]                         # source key = reason
    "encoder.aux_head.weight" = "auxiliary loss head, not part of the encoder"
    [[rules]]                      # regex rules on source keys giving TARGET keys, tried before the recipe's own
    match = '^old\\.(.*)$'
    replace = 'new.\\1'            # or: drop = "reason"
    [[source_rules]]               # regex renames of SOURCE keys, applied before everything else
    match = '^backbone\\.'         # e.g. strip a prefix ...
    replace = ''
    [[source_rules]]
    match = '\\.query\\.'          # ... or say that their `query` is the recipe's `q_proj`
    replace = '.q_proj.'

    keep_wrapper_prefix = true     # (top level) read the keys as saved: do not strip a DDP/compile/Lightning prefix

The window saves the same format, so fixes made by hand there work from the CLI and back.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import BadInput, quoted
from ..storage.files import regular_file
from ..storage.strict_json import check_nesting, too_deep
from ..storage.strict_json import loads as json_loads
from .rules import Rule, check_user_replacement, compile_user_pattern

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - depends on the interpreter
    import tomli as tomllib

FORMAT_VERSION = 1


@dataclass
class Overrides:
    rename: dict[str, str] = field(default_factory=dict)  # source key (as in the file) -> target key
    drop: dict[str, str] = field(default_factory=dict)  # source key (as in the file) -> reason
    rules: list[Rule] = field(default_factory=list)  # on source keys, giving target keys (or drops)
    source_rules: list[Rule] = field(default_factory=list)  # renames of source keys, before any rule
    # Speechport strips a training wrapper's prefix (DDP's `module.`...) it finds on every key; True
    # reads the keys as saved (the window's "Undo" of that inferred fix, kept with the fixes).
    keep_wrapper_prefix: bool = False

    def is_empty(self) -> bool:
        return not (self.rename or self.drop or self.rules or self.source_rules or self.keep_wrapper_prefix)

    def copy(self) -> Overrides:
        """An independent copy (the window's undo history keeps one per step)."""
        return Overrides(dict(self.rename), dict(self.drop), list(self.rules), list(self.source_rules),
                         self.keep_wrapper_prefix)

    def unused_entries(self, source_keys: Iterable[str]) -> list[str]:
        """Notes for entries that name no source key: usually a file made for another checkpoint."""
        known = set(source_keys)
        return [
            f"mapping file: {kind} entry {quoted(key)} matches no source key"
            for kind, entries in (("rename", self.rename), ("drop", self.drop))
            for key in entries
            if key not in known
        ]

    def to_dict(self) -> dict:
        data: dict = {"speechport_mapping": FORMAT_VERSION, "rename": dict(self.rename), "drop": dict(self.drop)}
        if self.rules:
            data["rules"] = [
                {"match": r.pattern, "replace": r.target} if r.target is not None else {"match": r.pattern, "drop": r.note}
                for r in self.rules
            ]
        if self.source_rules:
            data["source_rules"] = [{"match": r.pattern, "replace": r.target} for r in self.source_rules]
        if self.keep_wrapper_prefix:
            data["keep_wrapper_prefix"] = True
        return data

    @classmethod
    def from_dict(cls, data: dict, origin: str = "mapping") -> Overrides:
        if not isinstance(data, dict):
            raise BadInput(f"{origin}: a mapping file must be a table with 'rename' and/or 'drop'")
        unknown = set(data) - {"speechport_mapping", "rename", "drop", "rules", "source_rules", "keep_wrapper_prefix",
                               "recipe", "source"}
        if unknown:
            raise BadInput(f"{origin}: unknown section(s) {', '.join(quoted(name) for name in sorted(unknown)[:5])}; "
                           "expected 'rename', 'drop', 'rules', 'source_rules', 'keep_wrapper_prefix'")
        keep = data.get("keep_wrapper_prefix", False)
        if not isinstance(keep, bool):
            raise BadInput(f"{origin}: keep_wrapper_prefix must be true or false")
        rename = _string_table(data.get("rename", {}), "rename", origin)
        drop_entries = data.get("drop", {})
        if isinstance(drop_entries, list):  # a plain list of keys is accepted too
            drop_entries = {str(k): "dropped in the mapping file" for k in drop_entries}
        drop = _string_table(drop_entries, "drop", origin)
        both = sorted(set(rename) & set(drop))
        if both:
            raise BadInput(f"{origin}: {quoted(both[0])} is both renamed and dropped; keep one")
        rules = [_rule(entry, index, origin) for index, entry in enumerate(_table_list(data, "rules", origin))]
        source_rules = [_source_rule(entry, index, origin)
                        for index, entry in enumerate(_table_list(data, "source_rules", origin))]
        return cls(rename, {k: v or "dropped in the mapping file" for k, v in drop.items()}, rules, source_rules, keep)

    @classmethod
    def load(cls, path: str | Path) -> Overrides:
        path = regular_file(path, "mapping file")  # never open a FIFO or a device: the read would block
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise BadInput(f"{path}: no such mapping file") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise BadInput(f"{path}: cannot read the mapping file ({exc})") from None
        if path.suffix.lower() != ".toml":
            return cls.from_dict(json_loads(text, str(path), "the mapping file"), str(path))
        try:
            data = tomllib.loads(text)
        except RecursionError:  # tomllib recurses once per level of nested arrays and inline tables
            raise too_deep(str(path), "the mapping file") from None
        except tomllib.TOMLDecodeError as exc:
            raise BadInput(f"{path}: not valid TOML ({exc})") from None
        return cls.from_dict(check_nesting(data, str(path), "the mapping file"), str(path))

    def save(self, path: str | Path) -> None:
        path = Path(path)
        data = self.to_dict()
        if path.suffix.lower() == ".toml":
            import tomli_w

            text = tomli_w.dumps(data)
        else:
            text = json.dumps(data, indent=2) + "\n"
        path.write_text(text, encoding="utf-8")


def _string_table(entries, section: str, origin: str) -> dict[str, str]:
    if not isinstance(entries, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in entries.items()):
        raise BadInput(f"{origin}: [{section}] must map source keys to strings")
    return dict(entries)


def _table_list(data: dict, section: str, origin: str) -> list:
    entries = data.get(section, [])
    if not isinstance(entries, list):
        raise BadInput(f"{origin}: [[{section}]] must be a list of tables with 'match' and 'replace'")
    return entries


def _source_rule(entry, index: int, origin: str) -> Rule:
    where = f"{origin}: source_rules[{index}]"
    if not isinstance(entry, dict) or set(entry) != {"match", "replace"} or not all(
            isinstance(entry[k], str) for k in ("match", "replace")):
        raise BadInput(f"{where} needs exactly 'match' and 'replace', both strings (source rules only rename)")
    compile_user_pattern(entry["match"], where)
    check_user_replacement(entry["replace"], where)
    return source_rule(entry["match"], entry["replace"], f"source rule source_rules[{index}]")


def source_rule(match: str, replace: str, note: str = "source rule") -> Rule:
    """A user's rename of source keys (as the mapping file's [[source_rules]] and the window write them)."""
    return Rule(match, replace, note, user=True)


def _rule(entry, index: int, origin: str) -> Rule:
    if not isinstance(entry, dict) or "match" not in entry or ("replace" in entry) == ("drop" in entry):
        raise BadInput(f"{origin}: rules[{index}] needs 'match' and exactly one of 'replace' or 'drop'")
    if not isinstance(entry["match"], str):
        raise BadInput(f"{origin}: rules[{index}] 'match' must be a string")
    compile_user_pattern(entry["match"], f"{origin}: rules[{index}]")
    if "replace" in entry:
        check_user_replacement(str(entry["replace"]), f"{origin}: rules[{index}]")
    if "drop" in entry:
        return Rule(entry["match"], None, str(entry["drop"]) or "dropped by a mapping-file rule", user=True)
    return Rule(entry["match"], str(entry["replace"]), f"mapping-file rule rules[{index}]", user=True)
