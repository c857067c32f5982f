"""Messages name the library's fields with placeholders; each boundary (the CLI, `kvplan check`) spells them."""

from __future__ import annotations

import copy
import pickle

import pytest

from kvplan.errors import FLAGS, Text, UsageError, spell

PLAN = {"tp": "tensor_parallel_size", "kv_memory": "kv_cache_memory", "weights_bytes": "weights_bytes"}


def test_a_text_reads_as_flags_and_spells_as_keys():
    text = Text("{tp} {t} does not divide the model's {n:,} KV heads", t=3, n=8000)
    assert text == "--tp 3 does not divide the model's 8,000 KV heads"
    assert isinstance(text, str)
    assert spell(text, PLAN) == "tensor_parallel_size 3 does not divide the model's 8,000 KV heads"
    assert spell(text, {}) == str(text)  # a field the spelling does not name keeps its flag


def test_a_metavar_follows_a_flag_only():
    hint = Text("pass {kv_memory:SIZE} or {weights_bytes:SIZE}")
    assert hint == "pass --kv-memory SIZE or --weights-bytes SIZE"
    assert spell(hint, PLAN) == "pass kv_cache_memory or weights_bytes"


def test_values_are_substituted_verbatim_and_never_taken_for_fields():
    text = Text("{tp} of {model}", model="acme/{tp}")
    assert text == "--tp of acme/{tp}" and spell(text, PLAN) == "tensor_parallel_size of acme/{tp}"
    with pytest.raises(ValueError, match="named like fields: tp"):
        Text("{tp} {tp}", tp=2)
    with pytest.raises(KeyError):
        Text("{nonsense}")


def test_plain_strings_and_none_pass_through():
    assert spell("--tp 2 as written", PLAN) == "--tp 2 as written"
    assert spell(None, PLAN) is None


def test_texts_survive_copies_and_pickles():
    text = Text("raise {gpus} to {g}", g=2)
    for twin in (copy.deepcopy(text), pickle.loads(pickle.dumps(text))):
        assert twin == text and spell(twin, {"gpus": "n_gpu"}) == "raise n_gpu to 2"


def test_errors_carry_their_field_and_spell_both_parts():
    exc = UsageError(Text("{pp} {p} is too many", p=9), hint=Text("lower {pp}"), field="pp")
    assert str(exc) == exc.message == "--pp 9 is too many" and exc.field == "pp"
    assert exc.spelled({"pp": "pipeline_parallel_size"}) == (
        "pipeline_parallel_size 9 is too many",
        "lower pipeline_parallel_size",
    )
    assert exc.spelled(FLAGS) == ("--pp 9 is too many", "lower --pp")
    assert pickle.loads(pickle.dumps(exc)).field == "pp"
