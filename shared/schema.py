"""Typed config options with ranges, and the one parser every run-config reader goes through."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from shared.errors import ConfigError

__all__ = ["Option", "Scalar", "Schema"]

Scalar = int | float | str | bool

_TRUE = ("true", "1", "yes", "on")
_FALSE = ("false", "0", "no", "off")


@dataclass(frozen=True)
class Option:
    """One flat kebab-case run-config key.

    Attributes
    ----------
    key : str
        The key as written in `[tool.flwr.app.config]`, `--run-config` and `--set`.
    kind : type
        int, float, str or bool; values are converted to it (TOML gives ints for floats
        written without a dot, `--run-config` may give strings).
    default : Scalar
        The value used when the key is not given.
    help : str
        One line shown in errors and the README's reference.
    low, high : float | None
        Inclusive bounds of a number.
    choices : tuple of str
        Allowed values of a string (empty: any string).
    """

    key: str
    kind: type
    default: Scalar
    help: str
    low: float | None = None
    high: float | None = None
    choices: tuple[str, ...] = ()

    def parse(self, raw: Any) -> Scalar:
        """Convert and check one value; raise ConfigError naming the key and the fix."""
        value = self._convert(raw)
        if not isinstance(value, str | bool) and (
            (self.low is not None and value < self.low)
            or (self.high is not None and value > self.high)
        ):
            raise ConfigError(f"config key '{self.key}' must be {self._range()}, got {value}")
        if self.choices and value not in self.choices:
            hint = _did_you_mean(str(value), self.choices)
            raise ConfigError(
                f"config key '{self.key}' got {value!r}{hint}; allowed: {', '.join(self.choices)}"
            )
        return value

    def _convert(self, raw: Any) -> Scalar:
        kind = self.kind
        if kind is bool:
            if isinstance(raw, bool):
                return raw
            if isinstance(raw, str) and raw.lower() in _TRUE + _FALSE:
                return raw.lower() in _TRUE
        elif kind is int:
            if not isinstance(raw, bool):
                try:
                    number = float(raw)
                    if number.is_integer():
                        return int(number)
                except (TypeError, ValueError):
                    pass
        elif kind is float:
            if not isinstance(raw, bool):
                try:
                    return float(raw)
                except (TypeError, ValueError):
                    pass
        elif isinstance(raw, str | int | float) and not isinstance(raw, bool):
            return str(raw)
        raise ConfigError(
            f"config key '{self.key}' must be {_kind_name(kind)} ({self.help}), got {raw!r}; "
            "fix it in [tool.flwr.app.config], --run-config, --set or the command-line flag"
        )

    def _range(self) -> str:
        if self.low is not None and self.high is not None:
            return f"in [{_num(self.low)}, {_num(self.high)}]"
        if self.low is not None:
            return f">= {_num(self.low)}"
        return f"<= {_num(self.high or 0.0)}"


class Schema:
    """A set of options (run-wide, strategy and every task's) parsed together.

    A key declared twice must be declared identically (e.g. `val-fraction`, shared by
    the classification and GAN tasks), so that every reader sees one meaning.
    """

    def __init__(self, options: Iterable[Option]) -> None:
        self.options: dict[str, Option] = {}
        for option in options:
            known = self.options.get(option.key)
            if known is not None and known != option:
                raise ValueError(f"option '{option.key}' is declared twice, differently")
            self.options[option.key] = option

    def defaults(self) -> dict[str, Scalar]:
        """Every key with its default value."""
        return {key: option.default for key, option in self.options.items()}

    def parse(self, raw: Mapping[str, Any]) -> dict[str, Scalar]:
        """Defaults overlaid with `raw`, every value converted and checked.

        Raises
        ------
        ConfigError
            For an unknown key (with "did you mean") or a value of the wrong type or range.
        """
        unknown = sorted(set(raw) - set(self.options))
        if unknown:
            key = unknown[0]
            raise ConfigError(
                f"unknown config key '{key}'{_did_you_mean(key, self.options)}; "
                "see the README's configuration reference for the keys MedFleet reads"
            )
        values = self.defaults()
        for key, value in raw.items():
            values[key] = self.options[key].parse(value)
        return values


def _did_you_mean(word: str, candidates: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(candidates), n=2, cutoff=0.6)
    return f" (did you mean {' or '.join(repr(c) for c in close)}?)" if close else ""


def _kind_name(kind: type) -> str:
    return {int: "an integer", float: "a number", bool: "true or false"}.get(kind, "a string")


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)
