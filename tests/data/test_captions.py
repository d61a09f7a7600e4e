"""Image captions: the COCO, Flickr and csv readers with their errors, caption tokens, and the
caption vocabulary."""

from __future__ import annotations

import json

import pytest
import torch

from rnnkit.data.captions import (
    CaptionDataError,
    CaptionedImage,
    CaptionVocab,
    caption_tokens,
    read_caption_csv,
    read_captions,
    read_coco,
    read_flickr,
)


def write(path, data: bytes | str):
    """Write ``data`` (str as UTF-8) to ``path``, making its folders; return ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return path


def coco(tmp_path, images, annotations, **extra):
    """A COCO captions file holding ``images`` and ``annotations``."""
    obj = {"info": {}, "licenses": [], "images": images, "annotations": annotations, **extra}
    return write(tmp_path / "captions_train2017.json", json.dumps(obj))


def captions(report) -> dict[str, list[str]]:
    """``{image file name: captions}`` of a report, in item order."""
    return {item.image.rsplit("/", 1)[-1]: item.captions for item in report.items}


IMAGES = [{"id": 7, "file_name": "b.jpg", "height": 4}, {"id": 3, "file_name": "a.jpg"}]


# ------------------------------------------------------------------------------- coco
def test_coco_groups_captions_in_images_order(tmp_path):
    file = coco(tmp_path, IMAGES + [{"id": 9, "file_name": "none.jpg"}], [
        {"id": 1, "image_id": 3, "caption": "A cat."},
        {"id": 2, "image_id": 7, "caption": " A dog runs. \n"},
        {"id": 3, "image_id": 3, "caption": "Another cat"}])
    report = read_coco(file, tmp_path / "img")
    assert captions(report) == {"b.jpg": ["A dog runs."], "a.jpg": ["A cat.", "Another cat"]}
    assert report.items[0] == CaptionedImage(str(tmp_path / "img" / "b.jpg"), ["A dog runs."],
                                             f"{file}: images[0]")
    # an image without captions is dropped and counted, without skip_bad
    assert report.skipped == [f"{file}: images[2]: no captions for image 'none.jpg', dropped"]


def test_coco_annotation_of_unknown_image(tmp_path):
    file = coco(tmp_path, IMAGES, [{"image_id": 3, "caption": "ok"},
                                   {"image_id": 42, "caption": "lost"}])
    with pytest.raises(CaptionDataError, match=rf"{file}: annotations\[1\]: image_id 42 is not "
                                               r'in "images" \(pass skip_bad=True'):
        read_coco(file, tmp_path)
    report = read_coco(file, tmp_path, skip_bad=True)
    assert captions(report) == {"a.jpg": ["ok"]}
    assert report.skipped[0] == f'{file}: annotations[1]: image_id 42 is not in "images"'
    assert len(report.skipped) == 2  # and b.jpg, which has no caption left


def test_coco_empty_and_missing_captions(tmp_path):
    file = coco(tmp_path, IMAGES, [{"image_id": 3, "caption": "  "},
                                   {"image_id": 7, "caption": "fine"},
                                   {"image_id": 7, "bbox": [0, 0, 1, 1]}])
    with pytest.raises(CaptionDataError, match=rf"{file}: annotations\[0\]: empty caption"):
        read_coco(file, tmp_path)
    report = read_coco(file, tmp_path, skip_bad=True)
    assert captions(report) == {"b.jpg": ["fine"]}
    assert report.skipped[:2] == [
        f"{file}: annotations[0]: empty caption",
        f'{file}: annotations[2]: expected a "caption" string, got None '
        "(is this a captions_*.json file?)"]


def test_coco_bad_image_records(tmp_path):
    file = coco(tmp_path, [{"id": 1, "file_name": "a.jpg"}, {"id": 1, "file_name": "b.jpg"},
                           {"id": "2", "file_name": "c.jpg"}, {"id": 4}, "x"],
                [{"image_id": 1, "caption": "ok"}])
    with pytest.raises(CaptionDataError, match=rf"images\[1\]: id 1 again \(first at {file}: "):
        read_coco(file, tmp_path)
    report = read_coco(file, tmp_path, skip_bad=True)
    assert captions(report) == {"a.jpg": ["ok"]}
    assert [message.split(": ", 2)[1:] for message in report.skipped] == [
        ["images[1]", f"id 1 again (first at {file}: images[0])"],
        ["images[2]", "expected an integer \"id\", got '2'"],
        ["images[3]", 'expected a non-empty "file_name" string, got None'],
        ["images[4]", "expected an object, got str"]]


def test_coco_malformed_json_names_the_file(tmp_path):
    file = write(tmp_path / "captions.json", '{"images": [\n  {"id": 1,}\n]}')
    with pytest.raises(CaptionDataError, match=rf"{file}: invalid JSON at line 2, column 12"):
        read_coco(file, tmp_path)


@pytest.mark.parametrize("text, problem", [
    ("[1, 2]", "got a JSON list"),
    ('{"images": []}', "got keys ['images'] for 'annotations'"),
    ('{"images": {}, "annotations": []}', "got dict for 'images'")])
def test_coco_other_layouts(tmp_path, text, problem):
    file = write(tmp_path / "captions.json", text)
    with pytest.raises(CaptionDataError, match=rf"{file}: expected a COCO captions object") as e:
        read_coco(file, tmp_path)
    assert problem in str(e.value)


def test_coco_non_utf8_and_missing_file(tmp_path):
    file = write(tmp_path / "captions.json",
                 b'{"images": [], "annotations": [{"caption": "\xff"}]}')
    with pytest.raises(CaptionDataError, match=rf"{file}:1: expected UTF-8 text, got byte 0xff "
                                               "at offset 44"):
        read_coco(file, tmp_path)
    with pytest.raises(CaptionDataError, match="expected a caption file, got no such file"):
        read_coco(tmp_path / "nope.json", tmp_path)
    with pytest.raises(CaptionDataError, match="got a folder"):
        read_coco(tmp_path, tmp_path)


def test_coco_with_nothing_left(tmp_path):
    file = coco(tmp_path, IMAGES, [{"image_id": 5, "caption": "x"}])
    with pytest.raises(CaptionDataError, match=rf"no captioned images in {file}; the first of "
                                               r"3 skipped: .*image_id 5 is not"):
        read_coco(file, tmp_path, skip_bad=True)


# ------------------------------------------------------------------------------- flickr
TOKENS = ("\ufeff1000268201_693b08cb0e.jpg#0\tA child in a pink dress .\n"
          "1000268201_693b08cb0e.jpg#1\tA girl going into a wooden building .\n"
          "\n"
          "2258277193_586949ec62.jpg#0\tPeople waiting .\r\n"
          "1000268201_693b08cb0e.jpg#2\tA little girl .\n"
          "2258277193_586949ec62.jpg.1#0\tA crowd .\n"
          "99.jpg\tNo number .\n")


def test_flickr_groups_lines_by_image(tmp_path):
    file = write(tmp_path / "Flickr8k.token.txt", TOKENS)
    report = read_flickr(file, tmp_path / "Flicker8k_Dataset")
    assert captions(report) == {
        "1000268201_693b08cb0e.jpg": ["A child in a pink dress .",
                                      "A girl going into a wooden building .", "A little girl ."],
        "2258277193_586949ec62.jpg": ["People waiting .", "A crowd ."],  # ".jpg.1" is the .jpg
        "99.jpg": ["No number ."]}
    assert [item.source for item in report.items] == [f"{file}:1", f"{file}:4", f"{file}:7"]
    assert report.items[0].image == str(tmp_path / "Flicker8k_Dataset" /
                                        "1000268201_693b08cb0e.jpg")
    assert report.skipped == []


def test_flickr_line_without_tab(tmp_path):
    file = write(tmp_path / "tokens.txt", "a.jpg#0\tfine\na.jpg#1 tab became a space\n")
    with pytest.raises(CaptionDataError, match=rf"{file}:2: expected '<image>#<n><TAB><caption>'"
                                               r", got no tab in 'a.jpg#1 tab became a space' "
                                               r"\(tabs replaced by spaces\?\)"):
        read_flickr(file, tmp_path)


def test_flickr_bad_lines_skipped_and_counted(tmp_path):
    file = write(tmp_path / "tokens.txt",
                 b"a.jpg#0\tgood\nb.jpg#0\t  \n\tno name\nc.jpg#0\tcaf\xe9\nd.jpg#0\tok\n")
    with pytest.raises(CaptionDataError, match=rf"{file}:2: empty caption for 'b.jpg'"):
        read_flickr(file, tmp_path)
    report = read_flickr(file, tmp_path, skip_bad=True)
    assert captions(report) == {"a.jpg": ["good"], "d.jpg": ["ok"]}
    assert report.skipped == [f"{file}:2: empty caption for 'b.jpg'",
                              f"{file}:3: expected an image name before the tab, got none",
                              f"{file}:4: expected UTF-8 text, got byte 0xe9 at offset 44"]


def test_flickr_split_keeps_listed_images(tmp_path):
    file = write(tmp_path / "tokens.txt", TOKENS)
    split = write(tmp_path / "Flickr_8k.trainImages.txt",
                  "99.jpg\n\n1000268201_693b08cb0e.jpg\n")
    report = read_flickr(file, tmp_path, split=split)
    assert list(captions(report)) == ["1000268201_693b08cb0e.jpg", "99.jpg"]  # token-file order


def test_flickr_split_with_unknown_image(tmp_path):
    file = write(tmp_path / "tokens.txt", TOKENS)
    split = write(tmp_path / "split.txt", "99.jpg\nmissing.jpg\n")
    with pytest.raises(CaptionDataError, match=rf"{split}:2: image 'missing.jpg' of the split is "
                                               rf"not in {file}"):
        read_flickr(file, tmp_path, split=split)
    report = read_flickr(file, tmp_path, split=split, skip_bad=True)
    assert list(captions(report)) == ["99.jpg"]
    assert len(report.skipped) == 1


# ------------------------------------------------------------------------------- csv
def test_csv_groups_rows_in_first_seen_order(tmp_path):
    file = write(tmp_path / "captions.txt", 'Image,id,CAPTION\nb.jpg,1,"A dog, running."\n'
                                            'a.jpg,2,"two\nlines"\n\nb.jpg,3,Again\n')
    report = read_caption_csv(file, tmp_path / "Images")
    assert captions(report) == {"b.jpg": ["A dog, running.", "Again"], "a.jpg": ["two\nlines"]}
    assert [item.source for item in report.items] == [f"{file}:2", f"{file}:3"]


def test_csv_without_caption_column_names_the_columns(tmp_path):
    file = write(tmp_path / "captions.csv", "image,text\na.jpg,hello\n")
    with pytest.raises(CaptionDataError, match=rf"{file}:1: expected a header row with 'image' "
                                               r"and 'caption' columns \(any case\), got columns "
                                               r"'image', 'text' \(no 'caption'\)"):
        read_caption_csv(file, tmp_path)


def test_csv_bad_rows(tmp_path):
    file = write(tmp_path / "captions.csv",
                 b"image,caption\na.jpg,ok\nb.jpg\nc.jpg,\xff\xfe\n,orphan\nd.jpg,\n")
    with pytest.raises(CaptionDataError, match=rf"{file}:3: expected 2 fields as in the header, "
                                               "got 1"):
        read_caption_csv(file, tmp_path)
    report = read_caption_csv(file, tmp_path, skip_bad=True)
    assert captions(report) == {"a.jpg": ["ok"]}
    assert [message.removeprefix(f"{file}:") for message in report.skipped] == [
        "3: expected 2 fields as in the header, got 1",
        "4: expected UTF-8 text, got bytes 0xff 0xfe",
        "5: empty image name", "6: empty caption for 'd.jpg'"]


def test_csv_empty_file(tmp_path):
    file = write(tmp_path / "captions.csv", "")
    with pytest.raises(CaptionDataError, match=rf"no captioned images in {file}: the file is"):
        read_caption_csv(file, tmp_path)


# ------------------------------------------------------------------------------- read_captions
def test_read_captions_takes_exactly_one_source(tmp_path):
    file = write(tmp_path / "captions.csv", "image,caption\na.jpg,ok\n")
    assert captions(read_captions(csv=file, images=tmp_path)) == {"a.jpg": ["ok"]}
    with pytest.raises(ValueError, match="expected exactly one of coco=, flickr=, csv=, got none"):
        read_captions(images=tmp_path)
    with pytest.raises(ValueError, match="got coco=, csv="):
        read_captions(coco=file, csv=file, images=tmp_path)
    with pytest.raises(ValueError, match="split= applies to flickr"):
        read_captions(csv=file, images=tmp_path, split=file)


# ------------------------------------------------------------------------------- tokens, vocab
def test_caption_tokens():
    assert caption_tokens("A Dog's ball, on the U.S. grass.") == [
        "a", "dog", "'s", "ball", ",", "on", "the", "u.s.", "grass"]
    assert caption_tokens("Two cats .") == ["two", "cats"]
    assert caption_tokens("Wait...") == ["wait", "..."]
    assert caption_tokens("") == []


def test_vocab_build_min_count_and_max_size():
    tokens = [["a", "dog"], ["a", "cat"], ["a", "dog", "<end>"], ["cat"]]
    vocab = CaptionVocab.build(tokens, min_count=2)
    assert vocab.words == ("<pad>", "<unk>", "<start>", "<end>", "a", "cat", "dog")
    assert len(vocab) == 7
    assert CaptionVocab.build(tokens, min_count=2, max_size=5).words[4:] == ("a",)
    assert len(CaptionVocab.build(tokens)) == 4  # min_count=5 by default
    with pytest.raises(ValueError, match="expected max_size >= 4"):
        CaptionVocab.build(tokens, max_size=3)
    with pytest.raises(ValueError, match="expected min_count to be a positive int"):
        CaptionVocab.build(tokens, min_count=0)


def test_vocab_encode_decode():
    vocab = CaptionVocab.build([["a", "dog", "runs"]], min_count=1)
    ids = vocab.encode(["a", "dog", "flies"])
    assert ids == [vocab.START, vocab._ids["a"], vocab._ids["dog"], vocab.UNK, vocab.END]
    assert vocab.decode(ids + [vocab.PAD, vocab._ids["a"]]) == ["a", "dog", "<unk>"]
    assert vocab.decode(torch.tensor([vocab.START, vocab._ids["runs"], vocab.PAD])) == ["runs"]
    with pytest.raises(IndexError, match=r"expected word ids in \[0, 7\), got 9"):
        vocab.decode([9])
    with pytest.raises(TypeError, match="got a str"):
        vocab.encode("a dog")


def test_vocab_max_len_truncates_and_still_ends():
    vocab = CaptionVocab.build([["w"]], min_count=1)
    ids = vocab.encode(["w"] * 50)
    assert len(ids) == 32 and ids[0] == vocab.START and ids[-1] == vocab.END  # max_len=30
    assert vocab.encode(["w"] * 5, max_len=2) == [vocab.START, 4, 4, vocab.END]
    assert len(vocab.encode(["w"] * 50, max_len=None)) == 52
    assert vocab.encode([]) == [vocab.START, vocab.END]


def test_vocab_json_round_trip_and_bad_objects():
    vocab = CaptionVocab.build([["a", "dog"], ["a"]], min_count=1)
    assert CaptionVocab.from_json(json.loads(json.dumps(vocab.to_json()))) == vocab
    with pytest.raises(CaptionDataError, match=r'expected a caption vocabulary object '
                                               r'\{"words": \[...\]\}, got list'):
        CaptionVocab.from_json(["<pad>"])
    with pytest.raises(CaptionDataError, match=r"got keys \['names'\]"):
        CaptionVocab.from_json({"names": []})
    with pytest.raises(CaptionDataError, match="expected a caption vocabulary starting with"):
        CaptionVocab.from_json({"words": ["<pad>", "<unk>", "a"]})
    with pytest.raises(CaptionDataError, match="expected distinct words, got 'a' at index 4"):
        CaptionVocab.from_json({"words": [*CaptionVocab.SPECIALS, "a", "a"]})
    with pytest.raises(CaptionDataError, match="got 3 at index 4"):
        CaptionVocab.from_json({"words": [*CaptionVocab.SPECIALS, 3]})
