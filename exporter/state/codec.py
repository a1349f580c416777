"""Frozen result values to JSON and back, driven by their type hints (pure).

The state file holds the results of several checks, each a tree of frozen
dataclasses, enums, tuples and a few NamedTuples. One codec reads the
declared field types instead of a hand-written (de)serialiser per class, so a
check that lands later registers its result type and nothing else.

Decoding is strict: a value of the wrong type, a missing field without a
default or an unknown key is a ``StateDecodeError`` naming where it is, and the
caller drops that one entry.

A dataclass field declared with ``metadata={"kept": False}`` is not written (it
must have a default, which it takes when read back). A ``Secret`` is never
written: encoding one raises, so no result type can carry a password to disk by
accident.
"""

from __future__ import annotations

import base64
import dataclasses
import enum
import functools
import hashlib
import json
import types
import typing
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from exporter.config.secret import Secret

T = TypeVar("T")
Json = None | bool | int | float | str | list["Json"] | dict[str, "Json"]


class StateDecodeError(ValueError):
    """A stored value that does not fit its declared type; ``where`` says which part."""

    def __init__(self, where: str, message: str) -> None:
        super().__init__(f"{where or 'value'}: {message}")
        self.where = where
        self.message = message


def encode(value: object) -> Json:
    """``value`` as JSON-ready data; raises TypeError for what must not or cannot be stored."""
    return _encode(value, for_identity=False)


def identity(config: object) -> str:
    """A short digest of the configuration a result was produced under.

    Written beside each result so that a restart can tell whether the result
    still describes the configured server. Passwords are left out (a digest of
    one would be derived from it), and so are fields at their default: a
    release that adds an option keeps the results of targets that do not set it.
    """
    text = json.dumps(_encode(config, for_identity=True), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def decode(value_type: type[T], data: object, *, shared: dict[object, object] | None = None) -> T:
    """Rebuild a ``value_type`` from what ``encode`` gave; raises StateDecodeError.

    Values of classes marked ``kept_shared`` are made once per equal value in
    ``shared`` (one dict for a whole restore), as the running exporter shares them.
    """
    result: T = _decode(value_type, data, "", {} if shared is None else shared)
    return result


# Encoded values of classes marked ``kept_shared``, by identity: thousands of
# results hold the same few certificate facts (tls/session.py caches them), so
# each is encoded once. The value is kept with its text, so its id cannot be reused.
_SHARED_CAPACITY = 4096
_shared_encoded: dict[int, tuple[object, Json]] = {}


def _encode(value: object, *, for_identity: bool) -> Json:
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, enum.Enum):
        # Before int and str: StrEnum and IntEnum members are stored as their value.
        return _encode(value.value, for_identity=for_identity)
    if isinstance(value, int | float):
        return value
    if isinstance(value, Secret):
        raise TypeError("a Secret is never stored")
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, tuple | list):
        return [_encode(item, for_identity=for_identity) for item in value]
    kind: Any = type(value)
    kept = _kept_fields(kind)
    if kept is not None:
        if for_identity or not getattr(value, "kept_shared", False):
            return _encode_dataclass(value, kept, for_identity=for_identity)
        cached = _shared_encoded.get(id(value))
        if cached is not None and cached[0] is value:
            return cached[1]
        encoded = _encode_dataclass(value, kept, for_identity=False)
        if len(_shared_encoded) >= _SHARED_CAPACITY:
            _shared_encoded.clear()
        _shared_encoded[id(value)] = (value, encoded)
        return encoded
    if isinstance(value, frozenset):
        items = [_encode(item, for_identity=for_identity) for item in value]
        # A stable order, so an unchanged value writes the same text.
        return sorted(items, key=lambda item: json.dumps(item, sort_keys=True))
    if isinstance(value, Mapping):
        if not all(isinstance(key, str) for key in value):
            raise TypeError("only mappings with str keys are stored")
        return {key: _encode(item, for_identity=for_identity) for key, item in value.items()}
    raise TypeError(f"{type(value).__name__} values are not stored")


@functools.cache
def _kept_fields(value_type: Any) -> tuple[dataclasses.Field[Any], ...] | None:
    """The fields written of a dataclass type (None for any other type); looked up once per type."""
    if not dataclasses.is_dataclass(value_type):
        return None
    return tuple(field for field in dataclasses.fields(value_type) if field.metadata.get("kept", True))


def _encode_dataclass(value: Any, kept: tuple[dataclasses.Field[Any], ...], *, for_identity: bool) -> dict[str, Json]:
    encoded: dict[str, Json] = {}
    for field in kept:
        item = getattr(value, field.name)
        if for_identity and (isinstance(item, Secret) or _is_default(field, item)):
            continue
        encoded[field.name] = _encode(item, for_identity=for_identity)
    return encoded


def _is_default(field: dataclasses.Field[Any], item: object) -> bool:
    if field.default is not dataclasses.MISSING:
        return bool(item == field.default)
    if field.default_factory is not dataclasses.MISSING:
        return bool(item == field.default_factory())
    return False


Decoder = Callable[[object, dict[object, object]], Any]


def _decode(value_type: Any, data: object, where: str, shared: dict[object, object]) -> Any:
    try:
        return _decoder(value_type)(data, shared)
    except StateDecodeError as exc:
        raise StateDecodeError(where + exc.where, exc.message) from None


@functools.cache
def _decoder(value_type: Any) -> Decoder:
    """A function that reads one ``value_type``, made once per type: restoring 10,000 results calls it often.

    A problem is raised with the path below this value; each level adds its own in front.
    """
    origin = typing.get_origin(value_type)
    if origin is typing.Union or origin is types.UnionType:
        return _union_decoder(typing.get_args(value_type))
    if value_type is None or value_type is type(None):
        return _exact(type(None))
    if origin is tuple:
        return _tuple_decoder(typing.get_args(value_type))
    if origin is frozenset:
        (item_type,) = typing.get_args(value_type)
        items = _sequence_decoder(item_type)
        return lambda data, shared: frozenset(items(data, shared))
    if origin is not None and isinstance(origin, type) and issubclass(origin, Mapping):
        return _mapping_decoder(typing.get_args(value_type)[1])
    if not isinstance(value_type, type):
        raise TypeError(f"cannot read a {value_type!r}")
    if issubclass(value_type, enum.Enum):
        return _enum_decoder(value_type)
    if value_type is float:
        return _float
    if value_type is int:
        return _int
    if value_type in (bool, str):
        return _exact(value_type)
    if value_type is bytes:
        return _bytes
    if value_type is Path:
        text = _exact(str)
        return lambda data, shared: Path(text(data, shared))
    if dataclasses.is_dataclass(value_type):
        return _dataclass_decoder(value_type)
    if issubclass(value_type, tuple) and hasattr(value_type, "_fields"):
        fields = _tuple_decoder(tuple(_hints(value_type).values()))
        return lambda data, shared: value_type(*fields(data, shared))
    raise TypeError(f"cannot read a {value_type.__name__}")


def _exact(expected: type) -> Decoder:
    def read(data: object, shared: dict[object, object]) -> Any:
        if type(data) is not expected:
            raise StateDecodeError("", f"expected {expected.__name__}, found {type(data).__name__}")
        return data

    return read


def _int(data: object, shared: dict[object, object]) -> int:
    if type(data) is not int:
        raise StateDecodeError("", f"expected int, found {type(data).__name__}")
    return data


def _float(data: object, shared: dict[object, object]) -> float:
    if type(data) not in (int, float):
        raise StateDecodeError("", f"expected a number, found {type(data).__name__}")
    return float(data)  # type: ignore[arg-type]


def _bytes(data: object, shared: dict[object, object]) -> bytes:
    if type(data) is not str:
        raise StateDecodeError("", f"expected base64 text, found {type(data).__name__}")
    try:
        return base64.b64decode(data, validate=True)
    except ValueError:
        raise StateDecodeError("", "not base64") from None


def _enum_decoder(value_type: type[enum.Enum]) -> Decoder:
    def read(data: object, shared: dict[object, object]) -> Any:
        try:
            return value_type(data)
        except ValueError:
            raise StateDecodeError("", f"{data!r} is not a {value_type.__name__}") from None

    return read


def _union_decoder(options: tuple[Any, ...]) -> Decoder:
    optional = type(None) in options
    decoders = [_decoder(option) for option in options if option is not type(None)]

    def read(data: object, shared: dict[object, object]) -> Any:
        if data is None and optional:
            return None
        problems = []
        for decoder in decoders:
            try:
                return decoder(data, shared)
            except StateDecodeError as exc:
                problems.append(str(exc))
        raise StateDecodeError("", "fits none of its types: " + "; ".join(problems))

    return read


def _sequence_decoder(item_type: Any) -> Callable[[object, dict[object, object]], list[Any]]:
    item = _decoder(item_type)

    def read(data: object, shared: dict[object, object]) -> list[Any]:
        if type(data) is not list:
            raise StateDecodeError("", f"expected list, found {type(data).__name__}")
        decoded = []
        for index, element in enumerate(data):
            try:
                decoded.append(item(element, shared))
            except StateDecodeError as exc:
                raise _under(f"[{index}]", exc) from None
        return decoded

    return read


def _tuple_decoder(arguments: tuple[Any, ...]) -> Decoder:
    if len(arguments) == 2 and arguments[1] is Ellipsis:
        items = _sequence_decoder(arguments[0])
        return lambda data, shared: tuple(items(data, shared))
    decoders = [_decoder(argument) for argument in arguments]

    def read(data: object, shared: dict[object, object]) -> tuple[Any, ...]:
        if type(data) is not list or len(data) != len(decoders):
            raise StateDecodeError("", f"expected a list of {len(decoders)} items")
        decoded = []
        for index, (decoder, element) in enumerate(zip(decoders, data, strict=True)):
            try:
                decoded.append(decoder(element, shared))
            except StateDecodeError as exc:
                raise _under(f"[{index}]", exc) from None
        return tuple(decoded)

    return read


def _mapping_decoder(item_type: Any) -> Decoder:
    item = _decoder(item_type)

    def read(data: object, shared: dict[object, object]) -> Any:
        if type(data) is not dict:
            raise StateDecodeError("", f"expected dict, found {type(data).__name__}")
        decoded = {}
        for key, element in data.items():
            try:
                decoded[key] = item(element, shared)
            except StateDecodeError as exc:
                raise _under(f".{key}", exc) from None
        return types.MappingProxyType(decoded)

    return read


def _dataclass_decoder(value_type: type) -> Decoder:
    hints = _hints(value_type)
    fields = [field for field in dataclasses.fields(value_type) if field.init]
    readable = {field.name: _decoder(hints[field.name]) for field in fields if field.metadata.get("kept", True)}
    required = {
        field.name
        for field in fields
        if field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING
    }
    if required - set(readable):
        raise TypeError(f"{value_type.__name__}: a field not kept needs a default")
    is_shared = bool(getattr(value_type, "kept_shared", False))

    def read(data: object, shared: dict[object, object]) -> Any:
        if type(data) is not dict:
            raise StateDecodeError("", f"expected dict, found {type(data).__name__}")
        unknown = data.keys() - readable.keys()
        if unknown:
            raise StateDecodeError("", f"unknown keys {sorted(unknown)}")
        missing = required - data.keys()
        if missing:
            raise StateDecodeError("", f"missing {sorted(missing)}")
        arguments = {}
        for name, element in data.items():
            try:
                arguments[name] = readable[name](element, shared)
            except StateDecodeError as exc:
                raise _under(f".{name}", exc) from None
        value = value_type(**arguments)
        # One object per equal value, as the running exporter shares them.
        return shared.setdefault(value, value) if is_shared else value

    return read


def _under(step: str, exc: StateDecodeError) -> StateDecodeError:
    return StateDecodeError(step + exc.where, exc.message)


def _hints(value_type: type) -> dict[str, Any]:
    # The modules use ``from __future__ import annotations``: the hints are strings until resolved.
    return typing.get_type_hints(value_type)
