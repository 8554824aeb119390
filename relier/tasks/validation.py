"""Arguments and results checked against the task function's type hints.

Each annotated parameter gets a pydantic ``TypeAdapter``. On push, a call's
arguments are validated and turned into JSON (``mode="json"``: datetimes,
UUIDs, Decimals, dataclasses and pydantic models become their JSON form); on
the worker the JSON is validated again into the annotated types before the
function runs, so a ``datetime`` argument arrives as a ``datetime``. A
parameter without an annotation (or annotated ``Any``) is passed through and
must be JSON-native, as before.

Results follow the same rules: the return annotation, when there is one,
encodes the value and lets :meth:`relier.TaskHandle.result` rebuild it; a
value without one is encoded by pydantic's generic JSON rules.

The adapters are built on first use, not at decoration, so annotations that
name classes defined later in the module (``from __future__ import
annotations``) resolve.
"""

from __future__ import annotations

import inspect
import math
import threading
import typing
from collections.abc import Callable, Mapping
from typing import Any, cast

import pydantic
import pydantic_core

from relier.errors import ConfigurationError, PayloadNotSerializableError, PayloadValidationError
from relier.registry import Migration

__all__ = ["Validator", "check_migrations"]

_PASS = (inspect.Parameter.empty, Any)
# Hints whose adapter, for a value of exactly that type (not a subclass), gives
# the value back unchanged both ways: such arguments skip pydantic (a push
# of plain ints and strings pays no validation). Floats only when finite.
_IDENTITY = (str, int, bool, float)


class Validator:
    """The argument and result adapters of one task function."""

    def __init__(self, fn: Callable[..., Any], name: str, skip_first: bool) -> None:
        self._fn = fn
        self._name = name
        self._skip_first = skip_first
        self._lock = threading.Lock()
        self._built = False
        self._signature: inspect.Signature | None = None
        self._params: dict[str, pydantic.TypeAdapter[Any]] = {}
        self._slots: tuple[list[str], str | None, set[str], str | None] = ([], None, set(), None)
        self._result: pydantic.TypeAdapter[Any] | None = None
        # Names whose hint is one of _IDENTITY, and that type.
        self._plain: dict[str, type] = {}
        # (required, most) positional arguments when a call made of positional
        # arguments alone can be checked by counting them (no required
        # keyword-only parameter); most is None with *args. None: always bind.
        self._arity: tuple[int, int | None] | None = None

    def _build(self) -> None:
        with self._lock:
            if self._built:
                return
            try:
                hints = typing.get_type_hints(self._fn, include_extras=True)
            except Exception as exc:
                raise ConfigurationError(
                    f"task {self._name}: its type hints cannot be resolved ({exc}); import the "
                    "names they use at module level"
                ) from exc
            signature = inspect.signature(self._fn)
            params = list(signature.parameters.values())[1 if self._skip_first else 0 :]
            adapters: dict[str, pydantic.TypeAdapter[Any]] = {}
            try:
                for p in params:
                    hint = hints.get(p.name, inspect.Parameter.empty)
                    if hint in _PASS:
                        continue
                    adapters[p.name] = pydantic.TypeAdapter(hint)
                ret = hints.get("return", inspect.Parameter.empty)
                if ret not in _PASS and ret is not type(None) and ret is not None:
                    self._result = pydantic.TypeAdapter(ret)
            except pydantic.PydanticUserError as exc:
                raise ConfigurationError(
                    f"task {self._name}: a type hint pydantic cannot validate: {exc}"
                ) from exc
            except pydantic.errors.PydanticSchemaGenerationError as exc:
                raise ConfigurationError(
                    f"task {self._name}: a type hint pydantic cannot validate: {exc}"
                ) from exc
            self._signature = signature.replace(parameters=params)
            kinds = inspect.Parameter
            self._slots = (
                [p.name for p in params if p.kind in (kinds.POSITIONAL_ONLY,
                                                      kinds.POSITIONAL_OR_KEYWORD)],
                next((p.name for p in params if p.kind is kinds.VAR_POSITIONAL), None),
                {p.name for p in params if p.kind in (kinds.POSITIONAL_OR_KEYWORD,
                                                      kinds.KEYWORD_ONLY)},
                next((p.name for p in params if p.kind is kinds.VAR_KEYWORD), None),
            )  # fmt: skip
            self._params = adapters
            self._plain = {
                p.name: hint
                for p in params
                if (hint := hints.get(p.name)) in _IDENTITY and p.name in adapters
            }
            self._arity = _arity(params)
            self._built = True

    def _bound(self, args: tuple[Any, ...] | list[Any], kwargs: dict[str, Any]) -> Any:
        self._build()
        assert self._signature is not None
        arity = self._arity
        # What bind would conclude for positional arguments alone, by counting.
        if (
            arity is not None
            and not kwargs
            and arity[0] <= len(args)
            and (arity[1] is None or len(args) <= arity[1])
        ):
            return None
        try:
            return self._signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise PayloadValidationError(
                f"arguments do not fit {self._name}{self._signature}: {exc}"
            ) from None

    def _each(
        self,
        args: tuple[Any, ...] | list[Any],
        kwargs: dict[str, Any],
        convert: Callable[[str, pydantic.TypeAdapter[Any], Any], Any],
    ) -> tuple[list[Any], dict[str, Any]]:
        # The call keeps its shape (what was positional stays positional):
        # idempotency keys and key= callables see the arguments as given.
        positional, star_args, keyword, star_kwargs = self._slots
        plain = self._plain

        def one(name: str | None, value: Any) -> Any:
            adapter = self._params.get(name) if name else None
            if adapter is None:
                return value
            kind = plain.get(name or "")
            if type(value) is kind and (kind is not float or math.isfinite(cast(float, value))):
                return value  # the adapter would give it back unchanged
            return convert(name or "", adapter, value)

        new_args = [
            one(positional[i] if i < len(positional) else star_args, value)
            for i, value in enumerate(args)
        ]
        new_kwargs = {
            k: one(k if k in keyword else star_kwargs, value) for k, value in kwargs.items()
        }
        return new_args, new_kwargs

    def _error(self, name: str, exc: pydantic.ValidationError) -> PayloadValidationError:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in (name, *e['loc']))}: {e['msg']}" for e in exc.errors()
        )
        return PayloadValidationError(f"task {self._name}: invalid arguments: {problems}")

    def to_json(
        self, args: tuple[Any, ...] | list[Any], kwargs: dict[str, Any]
    ) -> tuple[list[Any], dict[str, Any]]:
        """A push's arguments, validated and in JSON form (the same call shape).

        Raises:
            PayloadValidationError: the arguments do not fit the signature or
                its type hints.
        """
        self._bound(args, kwargs)
        if not self._params:
            return list(args), dict(kwargs)

        def convert(name: str, adapter: pydantic.TypeAdapter[Any], value: Any) -> Any:
            try:
                valid = adapter.validate_python(value)
            except pydantic.ValidationError as exc:
                raise self._error(name, exc) from None
            return adapter.dump_python(valid, mode="json")

        return self._each(args, kwargs, convert)

    def from_json(
        self, args: list[Any], kwargs: dict[str, Any]
    ) -> tuple[list[Any], dict[str, Any]]:
        """A delivered call's JSON arguments as the annotated types.

        Raises:
            PayloadValidationError: as :meth:`to_json`.
        """
        self._bound(args, kwargs)
        if not self._params:
            return list(args), dict(kwargs)

        def convert(name: str, adapter: pydantic.TypeAdapter[Any], value: Any) -> Any:
            try:
                return adapter.validate_python(value)
            except pydantic.ValidationError as exc:
                raise self._error(name, exc) from None

        return self._each(args, kwargs, convert)

    def result_to_json(self, value: Any) -> Any:
        """A return value in JSON form, by the return annotation or pydantic's rules.

        Raises:
            PayloadNotSerializableError: the value has no JSON form.
        """
        self._build()
        try:
            if self._result is not None:
                return self._result.dump_python(value, mode="json")
            return pydantic_core.to_jsonable_python(value)
        except (pydantic_core.PydanticSerializationError, ValueError, TypeError) as exc:
            raise PayloadNotSerializableError(
                f"the result of {self._name} ({type(value).__name__}) has no JSON form: {exc}"
            ) from None

    def result_from_json(self, value: Any) -> Any:
        """A stored result as the return annotation's type (as is without one)."""
        self._build()
        if self._result is None:
            return value
        try:
            return self._result.validate_python(value)
        except pydantic.ValidationError:
            # Written by another version of the task: hand over what is stored.
            return value


def _arity(params: list[inspect.Parameter]) -> tuple[int, int | None] | None:
    """(required, most) positional arguments, or None when counting cannot decide."""
    kinds = inspect.Parameter
    positional = [p for p in params if p.kind in (kinds.POSITIONAL_ONLY,
                                                  kinds.POSITIONAL_OR_KEYWORD)]  # fmt: skip
    if any(p.kind is kinds.KEYWORD_ONLY and p.default is kinds.empty for p in params):
        return None
    required = sum(1 for p in positional if p.default is kinds.empty)
    star = any(p.kind is kinds.VAR_POSITIONAL for p in params)
    return required, None if star else len(positional)


def check_migrations(
    name: str, schema_version: int, migrations: Mapping[int, Migration] | None
) -> dict[int, Migration]:
    """The migrations of a task declared at ``schema_version``, validated.

    No migrations (``None`` or empty) is valid at any version. Otherwise the
    keys must be exactly the ints 1 to ``schema_version - 1``: a missing step
    would leave some older calls unmigratable, found only when one arrives.

    Raises:
        ConfigurationError: a version below 1, keys other than 1 to
            ``schema_version - 1``, or a value that is not a plain function.
    """
    if isinstance(schema_version, bool) or not isinstance(schema_version, int):
        raise ConfigurationError(f"schema_version must be an int >= 1, got {schema_version!r}")
    if schema_version < 1:
        raise ConfigurationError(f"schema_version must be >= 1, got {schema_version}")
    if migrations is None:
        return {}
    if not isinstance(migrations, Mapping):
        raise ConfigurationError(
            f"task {name}: migrations must be a dict {{from_version: function}}, got {migrations!r}"
        )
    if not migrations:
        return {}
    keys = list(migrations)
    expected = set(range(1, schema_version))
    wrong = [k for k in keys if isinstance(k, bool) or not isinstance(k, int)]
    if wrong or set(keys) != expected:
        if schema_version == 1:
            raise ConfigurationError(
                f"task {name}: migrations={{...}} given at schema_version=1, which has no older "
                "version to migrate from; declare the new version (schema_version=2) and key "
                "the migration from version 1 as 1"
            )
        missing = sorted(expected - set(keys))
        unexpected = [k for k in keys if k not in expected or k in wrong]
        raise ConfigurationError(
            f"task {name}: migrations must be keyed by the version each migrates from, "
            f"exactly 1 to {schema_version - 1} for schema_version={schema_version} "
            f"(migrations[k] turns a version-k call into a version-k+1 call); missing "
            f"{missing}, unexpected {unexpected!r}. A step that changes nothing is "
            "`lambda call: call`"
        )
    for key, fn in migrations.items():
        if not callable(fn) or inspect.iscoroutinefunction(fn):
            raise ConfigurationError(
                f"task {name}: migrations[{key}] must be a plain (not async) function of the "
                f"call, got {fn!r}; it runs in the worker before the task"
            )
    return dict(sorted(migrations.items()))
