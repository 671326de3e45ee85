from __future__ import annotations

import copy
import json
import pickle

import pydantic
import pytest

from interlock import FrozenDict


def test_nested_values_are_frozen_at_construction() -> None:
    data = FrozenDict({"a": [1, {"b": [2, 3]}], "c": {"d": "e"}})
    assert data["a"] == (1, FrozenDict({"b": (2, 3)}))
    assert isinstance(data["a"][1], FrozenDict)
    assert isinstance(data["c"], FrozenDict)


def test_source_mutation_does_not_leak_in() -> None:
    source = {"list": [1, 2], "inner": {"k": "v"}}
    data = FrozenDict(source)
    source["list"].append(3)
    source["inner"]["k"] = "changed"
    source["new"] = 1
    assert data == {"list": (1, 2), "inner": {"k": "v"}}


@pytest.mark.parametrize(
    "mutate",
    [
        lambda d: d.__setitem__("x", 1),
        lambda d: d.__delitem__("a"),
        lambda d: d.update({"x": 1}),
        lambda d: d.pop("a"),
        lambda d: d.popitem(),
        lambda d: d.setdefault("x", 1),
        lambda d: d.clear(),
        lambda d: d.__ior__({"x": 1}),
    ],
)
def test_every_mutator_raises(mutate: object) -> None:
    data = FrozenDict({"a": 1})
    with pytest.raises(TypeError, match="read-only"):
        mutate(data)  # type: ignore[operator]
    assert data == {"a": 1}


def test_reinit_cannot_refill() -> None:
    data = FrozenDict({"a": 1})
    data.__init__({"b": 2})  # type: ignore[misc]
    assert data == {"a": 1}


def test_reads_like_a_dict() -> None:
    data = FrozenDict({"a": 1, "b": [1]})
    assert isinstance(data, dict)
    assert json.loads(json.dumps(data)) == {"a": 1, "b": [1]}
    assert data.get("a") == 1
    mutable = data.copy()
    mutable["c"] = 3
    assert "c" not in data
    assert type(mutable) is dict


def test_copy_pickle_and_hash() -> None:
    data = FrozenDict({"a": [1, {"b": 2}]})
    assert copy.copy(data) is data
    assert copy.deepcopy(data) is data
    restored = pickle.loads(pickle.dumps(data))
    assert restored == data
    assert type(restored) is FrozenDict
    assert hash(data) == hash(FrozenDict({"a": (1, {"b": 2})}))


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"a": {1, 2}}, r"value\.a: set is not JSON data"),
        ({"a": [1, {"b": object()}]}, r"value\.a\[1\]\.b: object is not JSON data"),
        ({"a": {3: "x"}}, r"value\.a: the key 3 \(int, keys must be str\)"),
    ],
)
def test_non_json_is_refused_with_its_path(value: dict[str, object], message: str) -> None:
    with pytest.raises(TypeError, match=message):
        FrozenDict(value)


def test_pydantic_validates_and_serialises() -> None:
    adapter = pydantic.TypeAdapter(FrozenDict)
    data = adapter.validate_python({"a": [1, 2]})
    assert type(data) is FrozenDict
    assert data["a"] == (1, 2)
    assert adapter.dump_python(data, mode="json") == {"a": [1, 2]}
    with pytest.raises(pydantic.ValidationError):
        adapter.validate_python({"a": object()})
