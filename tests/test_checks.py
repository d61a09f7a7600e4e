"""The checks of ids and lengths (rnnkit.checks): the value checks that the models' forward
passes ran on every batch before, now run once where the data enters."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from rnnkit.checks import (
    check_class_ids,
    check_fields,
    check_ids_shape,
    check_lengths,
    check_lengths_shape,
    check_special_ids,
    check_token_ids,
)
from rnnkit.errors import RnnkitError

CAPTIONS = torch.tensor([[2, 5, 6, 3, 0, 0, 0]] * 4)  # (B=4, T=7): <START> w w <END> <PAD> ..


# ---------------------------------------------- what the models' forward checked before
@pytest.mark.parametrize(("check", "args", "message"), [
    # LanguageModel.forward's idx
    (check_token_ids, (torch.tensor([[0, 11]]), 11, "idx"),
     r"expected idx in \[0, 11\) \(the vocabulary\), got ids from 0 to 11"),
    # SequenceClassifier.forward's ids and targets
    (check_token_ids, (torch.tensor([[2, 13, 4]]), 13, "ids"), r"ids in \[0, 13\)"),
    (check_class_ids, (torch.tensor([0, 1, 2, 3]), 3, "targets"),
     r"expected targets in \[0, 3\) \(the classes\), got 0 to 3"),
    # Captioner.forward's captions and lengths
    (check_token_ids, (CAPTIONS + 20, 12, "captions"), r"expected captions in \[0, 12\)"),
    (check_lengths, (torch.tensor([8, 2, 2, 2]), 4, 7, "lengths", 2),
     r"expected every length in \[2, T=7\], got lengths from 2 to 8"),
    # Seq2Seq.forward's source and target ids
    (check_token_ids, (torch.tensor([[4, 31]]), 11, "source ids"),
     r"expected source ids in \[0, 11\)"),
    (check_token_ids, (CAPTIONS + 20, 12, "target ids"), r"expected target ids in \[0, 12\)"),
])
def test_out_of_range_values_say_what_was_expected(check, args, message):
    with pytest.raises(RnnkitError, match=message):
        check(*args)


def test_token_ids_of_encoded_sequences():
    """Encoded data as the tasks hold it, lists of ids of any lengths, is checked as it is."""
    check_token_ids([[2, 5, 3], [], [2, 11]], 12, "the training captions")
    check_token_ids([], 12, "nothing")
    check_token_ids(torch.zeros(0, dtype=torch.long), 12, "nothing")
    with pytest.raises(RnnkitError, match=r"expected the validation texts in \[0, 12\) \(the "
                                          r"vocabulary\), got ids from -1 to 12"):
        check_token_ids([[2, 12], [-1]], 12, "the validation texts")
    check_class_ids([0, 2, 1], 3, "the labels")
    with pytest.raises(RnnkitError, match=r"expected the labels in \[0, 3\) \(the classes\)"):
        check_class_ids([0, 3], 3, "the labels")


def test_value_checks_refuse_ids_that_are_not_integers():
    with pytest.raises(RnnkitError, match="expected idx as integer token ids .*, got torch.float"):
        check_token_ids(torch.zeros(2, 3), 11, "idx")
    with pytest.raises(RnnkitError, match="expected targets as integer class ids"):
        check_class_ids(torch.tensor([True]), 3, "targets")


# ------------------------------------------------------- what the models still check
def test_ids_shape_reads_types_dtypes_and_shapes_only():
    ids = torch.tensor([[0, 99]])  # out of any vocabulary: not this check's business
    assert check_ids_shape(ids.int(), "idx", "(B, T)").dtype == torch.int64
    with pytest.raises(TypeError, match=r"expected idx as a tensor of token ids \(B, T\), got "
                                        "list"):
        check_ids_shape([[1, 2]], "idx", "(B, T)")
    with pytest.raises(RnnkitError, match="expected idx as integer token ids"):
        check_ids_shape(ids.bool(), "idx", "(B, T)")
    with pytest.raises(RnnkitError, match=r"expected idx of shape \(B, T\), non-empty, got "
                                          r"\(1, 0\)"):
        check_ids_shape(ids[:, :0], "idx", "(B, T), non-empty")
    with pytest.raises(RnnkitError, match=r"expected captions of shape \(B=2, T >= 2\)"):
        check_ids_shape(ids, "captions", "(B=2, T >= 2)", batch_size=2, min_steps=2)
    with pytest.raises(RnnkitError, match=r"expected captions of shape \(B=1, T >= 3\)"):
        check_ids_shape(ids, "captions", "(B=1, T >= 3)", batch_size=1, min_steps=3)
    assert check_ids_shape(ids[0], "prime", "(P,) or (B, P)", dims=(1, 2)).shape == (2,)


@pytest.mark.parametrize("lengths", [torch.tensor([1, 2]), torch.tensor([1.0, 2.0, 3.0]),
                                     torch.tensor([True, True, True]), [[1, 2, 3]]])
def test_lengths_of_the_wrong_kind(lengths):
    for check in (lambda: check_lengths_shape(lengths, 3), lambda: check_lengths(lengths, 3, 5)):
        with pytest.raises(RnnkitError, match=r"expected lengths as 3 integers \(B,\)"):
            check()


def test_lengths_in_range():
    assert check_lengths([1, 5, 3], 3, 5).tolist() == [1, 5, 3]
    assert check_lengths(torch.tensor([2, 3], dtype=torch.int32), 2, 3).dtype == torch.int64
    assert check_lengths_shape([0, 9], 2).tolist() == [0, 9]  # values not read
    with pytest.raises(RnnkitError, match=r"expected every length in \[1, T=5\], got "
                                          r"source_lengths from 0 to 5"):
        check_lengths([0, 5], 2, 5, "source_lengths")


# ------------------------------------------------------------- a model config's fields
def test_fields_of_a_config():
    good = SimpleNamespace(size=3, on=False, dropout=0.5, pooling="max", pad=0, unk=1)
    check_fields(good, positive=("size",), flags=("on",), rates=("dropout",),
                 choices={"pooling": ("max", "mean")})
    check_special_ids(good, ("pad", "unk"), 3, "the vocabulary")
    for field, value, message in [
            ("size", True, "size must be a positive integer, got True"),
            ("size", 0, "size must be a positive integer, got 0"),
            ("on", 1, "on must be True or False, got 1"),
            ("dropout", 1.0, r"dropout must be in \[0, 1\), got 1.0"),
            ("pooling", "sum", "unknown pooling 'sum': expected one of 'max', 'mean'"),
            ("unk", 3, r"unk must be an id in \[0, 3\) \(the vocabulary\), got 3"),
            ("unk", 0, "unk and pad must differ, got 0 for both")]:
        bad = SimpleNamespace(**{**vars(good), field: value})
        with pytest.raises(RnnkitError, match=message):
            check_fields(bad, positive=("size",), flags=("on",), rates=("dropout",),
                         choices={"pooling": ("max", "mean")})
            check_special_ids(bad, ("pad", "unk"), 3, "the vocabulary")
    check_special_ids(SimpleNamespace(pad=0, unk=0), ("pad", "unk"), 3, "the vocabulary",
                      distinct=False)
