"""Caption metrics (BLEU-1..4, CIDEr-D): against pycocoevalcap's numbers, against values worked
out by hand, by their properties, and their errors."""

import math

import pytest

from rnnkit.metrics import bleu, caption_scores, cider_d

# Small corpora: (candidate, references) per item, as space-joined tokens.
CORPORA = {
    # clipping ("the" x3 against at most 2 in a reference), several references of different
    # lengths, and ties for the closest reference length (5 -> 4 or 6; 8 -> 5 or 11: the shorter)
    "clip_and_ties": [
        ("the the the cat sat",
         ["the cat sat on the mat", "a cat is on the mat", "there is a cat"]),
        ("a dog", ["a dog runs in the park", "the dog is running outside", "a brown dog plays"]),
        ("a man rides a horse on the beach",
         ["a man rides a horse", "a person riding a horse on a beach near the sea"]),
    ],
    # candidates shorter than their references (brevity penalty: C = 15 < R = 22), an item with
    # one reference, and no matching 4-gram (BLEU-4 is then ~ the smoothing constants)
    "short": [
        ("two birds on a wire",
         ["two birds sitting on a wire", "two small birds perched on a power line"]),
        ("a red bus", ["a red bus parked on the street", "a red double decker bus"]),
        ("a kitchen", ["a clean white kitchen with wooden cabinets"]),
        ("people walk on a street",
         ["people walking down a busy city street", "a crowd of people on a street",
          "pedestrians on the sidewalk"]),
    ],
    # an empty candidate, a one-word one, one equal to its only reference, one with no word in
    # common with its references (repeated), one close to three references
    "edge": [
        ("", ["a cat on a mat", "a cat"]),
        ("dog", ["a dog", "the dog barks"]),
        ("a bowl of fruit on a table", ["a bowl of fruit on a table"]),
        ("zebra zebra zebra",
         ["a giraffe eating leaves from a tree", "a tall giraffe near a tree"]),
        ("a cat on a table", ["a cat sitting on a table", "a cat lying on a wooden table",
                              "a kitten on a table top"]),
    ],
    # one item: CIDEr's idf is log(1) - log(1) = 0 for every n-gram, so CIDEr is 0
    "one_item": [
        ("a cat on a mat", ["a cat on a mat", "a cat sits on the mat"]),
    ],
}

# Produced with pycocoevalcap 1.2 (`pip download pycocoevalcap==1.2 --no-deps`, the wheel unzipped
# and put on sys.path; only its pure-Python bleu/ and cider/ packages imported, no Java), on the
# space-joined strings above:
#     gts = {i: refs for i, (candidate, refs) in enumerate(corpus)}
#     res = {i: [candidate] for i, (candidate, refs) in enumerate(corpus)}
#     Bleu(4).compute_score(gts, res, verbose=0)[0]  # BleuScorer option="closest"
#     Cider().compute_score(gts, res)[0]             # n=4, sigma=6.0
# printed with repr(). Our functions gave the same floats, bit for bit (and matched within 3e-16
# on 300 random corpora); the tolerance below only leaves room for other platforms' libm.
EXPECTED = {
    "clip_and_ties": ([0.9333333332711112, 0.7888106376874549, 0.701817733011847,
                       0.5605976101125273], 2.5372679339067488),
    "short": ([0.5852831461768148, 0.48328165220401315, 0.39742119397013737,
               5.6008711334484605e-05], 1.915926499851605),
    "edge": ([0.5245894276570887, 0.5040092193331315, 0.4781828052080688, 0.465770193480987],
             2.771858643448191),
    "one_item": ([0.9999999996000004, 0.9999999995750004, 0.9999999995388893,
                  0.9999999994791672], 0.0),
}
# The same way, Cider(sigma=2.0).compute_score(gts, res)[0] on "clip_and_ties".
EXPECTED_CIDER_SIGMA_2 = 1.2801930148830851
REL = 1e-12


def _words(text: str) -> list[str]:
    """The tokens of a space-joined sentence."""
    return text.split()


def _tokens(corpus: list[tuple[str, list[str]]]) -> tuple[list, list]:
    """(candidates, references) as token lists from the space-joined corpus."""
    candidates = [candidate.split() for candidate, _ in corpus]
    references = [[ref.split() for ref in refs] for _, refs in corpus]
    return candidates, references


@pytest.mark.parametrize("name", sorted(CORPORA))
def test_bleu_matches_pycocoevalcap(name: str) -> None:
    assert bleu(*_tokens(CORPORA[name])) == pytest.approx(EXPECTED[name][0], rel=REL)


@pytest.mark.parametrize("name", sorted(CORPORA))
def test_cider_d_matches_pycocoevalcap(name: str) -> None:
    assert cider_d(*_tokens(CORPORA[name])) == pytest.approx(EXPECTED[name][1], rel=REL, abs=0)


def test_cider_d_sigma_matches_pycocoevalcap() -> None:
    got = cider_d(*_tokens(CORPORA["clip_and_ties"]), sigma=2.0)
    assert got == pytest.approx(EXPECTED_CIDER_SIGMA_2, rel=REL)


@pytest.mark.parametrize("name", sorted(CORPORA))
def test_caption_scores_names_and_values(name: str) -> None:
    scores = caption_scores(*_tokens(CORPORA[name]))
    bleus, cider = EXPECTED[name]
    assert list(scores) == ["bleu1", "bleu2", "bleu3", "bleu4", "cider"]
    assert [scores[f"bleu{n}"] for n in range(1, 5)] == pytest.approx(bleus, rel=REL)
    assert scores["cider"] == pytest.approx(cider, rel=REL, abs=0)


def test_bleu_clips_repeated_words_as_papineni() -> None:
    # Papineni et al. 2002, section 2.1: "the" x7 against these references has a modified
    # unigram precision of 2/7; the closest reference length is 7, so no brevity penalty.
    candidates = [["the"] * 7]
    references = [[_words("the cat is on the mat"), _words("there is a cat on the mat")]]
    assert bleu(candidates, references, max_n=1) == pytest.approx([2 / 7], rel=1e-9)


def test_bleu_brevity_penalty_by_hand() -> None:
    # every n-gram matches (p_1 = p_2 = 1), C = 2 < R = 4: BP = exp(1 - R / C) = exp(-1)
    got = bleu([["a", "b"]], [[["a", "b", "c", "d"]]], max_n=2)
    assert got == pytest.approx([math.exp(-1), math.exp(-1)], rel=1e-8)


def test_bleu_closest_reference_length_tie_goes_to_shorter() -> None:
    # |c| = 3, references of 2 and 4 tokens are equally close: R = 2 (no penalty), not 4
    candidate = [["a", "b", "c"]]
    for refs in ([["a", "b", "c", "d"], ["a", "b"]], [["a", "b"], ["a", "b", "c", "d"]]):
        assert bleu(candidate, [refs], max_n=1) == pytest.approx([1.0], rel=1e-8)


def test_bleu_is_one_for_candidates_equal_to_their_only_reference() -> None:
    sentences = [_words("a man rides a horse on the beach"), _words("two birds sit on a wire")]
    got = bleu(sentences, [[sentence] for sentence in sentences])
    assert got == pytest.approx([1.0] * 4, abs=1e-8)  # 1 up to the smoothing constants


def test_bleu_of_a_sentence_shorter_than_n_is_the_smoothing_ratio() -> None:
    # pycocoevalcap's convention: no 4-gram to guess gives p_4 = 1e-15 / 1e-9, not 1 (nor 0), so
    # a 3-token caption equal to its reference has BLEU-4 = (1e-6)^(1/4) ~ 0.0316
    got = bleu([["a", "cat", "sat"]], [[["a", "cat", "sat"]]])
    assert got == pytest.approx([1.0, 1.0, 1.0, 1e-6 ** 0.25], rel=1e-6)


def test_disjoint_vocabulary_scores_zero() -> None:
    candidates = [["zebra", "zebra"], ["red", "bus", "stops", "here"]]
    references = [[["a", "cat"], ["the", "cat", "sat"]], [["green", "trees"]]]
    assert max(bleu(candidates, references)) < 1e-9
    assert cider_d(candidates, references) == 0.0


def test_empty_candidates_score_zero() -> None:
    candidates = [[], []]
    references = [[["a", "cat"]], [["a", "dog", "barks"], ["dog"]]]
    assert bleu(candidates, references) == [0.0] * 4  # BP = exp(1 - R / ~0) underflows to 0
    assert cider_d(candidates, references) == 0.0


@pytest.mark.parametrize("name", ["clip_and_ties", "short", "edge"])
def test_scores_do_not_depend_on_the_order_of_references(name: str) -> None:
    candidates, references = _tokens(CORPORA[name])
    reversed_refs = [list(reversed(refs)) for refs in references]
    rotated_refs = [refs[1:] + refs[:1] for refs in references]
    for refs in (reversed_refs, rotated_refs):
        assert bleu(candidates, refs) == bleu(candidates, references)  # integer sums: exact
        assert cider_d(candidates, refs) == pytest.approx(cider_d(candidates, references),
                                                          rel=1e-12)


def test_bleu_orders_are_cumulative() -> None:
    candidates, references = _tokens(CORPORA["short"])
    assert bleu(candidates, references, max_n=2) == bleu(candidates, references)[:2]


def test_cider_d_is_ten_for_candidates_equal_to_their_references() -> None:
    # two items with no n-gram in common: every idf is log 2 > 0, each cosine is 1, no penalty
    sentences = [_words("a man rides a horse"), _words("two birds sit on wires")]
    got = cider_d(sentences, [[sentence, sentence] for sentence in sentences])
    assert got == pytest.approx(10.0, rel=1e-12)


def test_cider_d_of_a_single_item_is_zero() -> None:
    # pycocoevalcap's df and N come from the evaluated corpus: with N = 1 every idf is 0
    assert cider_d([["a", "cat"]], [[["a", "cat"]]]) == 0.0


def test_cider_d_penalises_length_difference() -> None:
    sentences = [_words("a man rides a horse"), _words("two birds sit on wires")]
    candidates = [sentences[0] + ["today"], sentences[1]]
    references = [[sentence] for sentence in sentences]
    assert cider_d(candidates, references, sigma=1.0) < cider_d(candidates, references)


CAT = [["a", "cat"]]


@pytest.mark.parametrize("function", [bleu, cider_d, caption_scores])
@pytest.mark.parametrize(("candidates", "references", "message"), [
    ([["a"], ["b"]], [CAT], r"got 2 candidates and 1 reference lists"),
    ([], [], r"expected at least one candidate, got none"),
    ([["a"], ["b"]], [CAT, []], r"expected at least one reference for item 1, got none"),
    (["a cat"], [CAT], r"expected candidates\[0\] as a list of string tokens, got str 'a cat'"),
    ("a cat", [CAT], r"expected candidates as a list with one entry per item, got str"),
    ([["a"]], [["a", "cat"]], r"expected references\[0\] as a list of token lists \(one per "
                              r"reference\), got a str at references\[0\]\[0\]: 'a'"),
    ([["a"]], ["a cat"], r"expected references\[0\] as a list of token lists, got str"),
    ([["a"]], [[["a"], [1, 2]]], r"expected references\[0\]\[1\] as a list of string tokens, "
                                 r"got a token of type int"),
])
def test_bad_input_says_what_was_expected(function, candidates, references, message) -> None:
    with pytest.raises(ValueError, match=message):
        function(candidates, references)


@pytest.mark.parametrize("max_n", [0, -1, 2.0, True])
def test_bleu_rejects_a_bad_max_n(max_n) -> None:
    with pytest.raises(ValueError, match=r"expected max_n as an integer >= 1, got"):
        bleu([["a"]], [CAT], max_n=max_n)


@pytest.mark.parametrize("sigma", [0.0, -6.0, math.inf, math.nan, "6"])
def test_cider_d_rejects_a_bad_sigma(sigma) -> None:
    with pytest.raises(ValueError, match=r"expected sigma as a positive number, got"):
        cider_d([["a"]], [CAT], sigma=sigma)
