"""Configs written once: a field's default and help make its flag; nested configs load flat."""

from __future__ import annotations

import argparse
from dataclasses import dataclass

import pytest

from rnnkit.arguments import add_config_arguments, config_values, given
from rnnkit.config import flat_fields, flatten, from_dict, nest, option, to_dict


@dataclass
class Inner:
    size: int | None = option(None, "set from the data", cli=False)
    hidden_size: int = option(16, "H, units", old_names=("units",))
    bidirectional: bool = option(True, "both ways", negative="--unidirectional")
    tie: bool = option(False, "share the matrix")


@dataclass
class Outer:
    path: str | None = option(None, "a file", aliases=("--old-path",))
    rate: float = option(0.5, "a fraction of 100%")
    header: bool | None = option(None, "the first row names the columns (default: detect)")
    kind: str = option("a", "one of a, b", choices=("a", "b"))
    files: list[str] | None = option(None, "one or more files", metavar="FILE")
    model: Inner = option(factory=Inner)


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_config_arguments(parser, Outer)
    return parser.parse_args(argv)


def test_flags_come_from_the_fields_and_default_to_not_given() -> None:
    args = parse()
    assert given(args, Outer) == {}
    assert config_values(args, Outer) == Outer()
    args = parse("--old-path", "x.txt", "--rate", "0.25", "--hidden-size", "8",
                 "--unidirectional", "--tie", "--no-header", "--kind", "b")
    assert given(args, Outer) == {"path": "x.txt", "rate": 0.25, "hidden_size": 8,
                                  "bidirectional": False, "tie": True, "header": False,
                                  "kind": "b"}
    config = config_values(args, Outer)
    assert config.model == Inner(hidden_size=8, bidirectional=False, tie=True)
    assert (config.path, config.header, config.kind) == ("x.txt", False, "b")
    assert parse("--header").header is True
    assert parse("--files", "a.en", "a.de").files == ["a.en", "a.de"]


def test_help_shows_each_fields_text_and_default(capsys) -> None:
    with pytest.raises(SystemExit):
        parse("--help")
    text = " ".join(capsys.readouterr().out.split())
    assert "H, units (default: 16)" in text and "a fraction of 100% (default: 0.5)" in text
    assert "--unidirectional" in text and "--size" not in text  # data-derived: not a flag
    with pytest.raises(SystemExit):
        parse("--kind", "c")  # not one of the choices


def test_nest_and_flatten_are_inverse_and_unknown_names_are_refused() -> None:
    flat = {"path": "p", "hidden_size": 4}
    assert nest(Outer, flat) == {"path": "p", "model": {"hidden_size": 4}}
    assert flatten(nest(Outer, flat)) == flat
    with pytest.raises(ValueError, match="unknown options for Outer: hiden_size"):
        nest(Outer, {"hiden_size": 4})
    assert set(flat_fields(Outer)) == {"path", "rate", "header", "kind", "files", "size",
                                       "hidden_size", "bidirectional", "tie"}
    assert nest(Outer, {"units": 4}) == {"model": {"hidden_size": 4}}  # its old name


def test_from_dict_reads_nested_and_the_older_flat_layout() -> None:
    config = Outer(path="p", model=Inner(size=3, hidden_size=8))
    assert from_dict(Outer, to_dict(config)) == config
    # runs written before the model's config was nested kept its fields at the top
    assert from_dict(Outer, {"path": "p", "size": 3, "hidden_size": 8}) == config
    assert from_dict(Outer, {"path": "p", "size": 3, "units": 8}) == config  # an old name
    with pytest.raises(ValueError, match="unknown Outer keys in run/last.safetensors: colour"):
        from_dict(Outer, {"colour": 1}, where="run/last.safetensors")


def test_a_name_declared_twice_across_the_nesting_is_an_error() -> None:
    @dataclass
    class Clash:
        hidden_size: int = option(1, "again")
        model: Inner = option(factory=Inner)

    with pytest.raises(TypeError, match="declared twice"):
        flat_fields(Clash)
