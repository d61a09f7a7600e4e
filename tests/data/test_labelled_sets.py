"""download_set: the standard labelled sets fetched, unpacked and their parts located."""

import hashlib
import io
import tarfile

from rnnkit.data import download
from rnnkit.data.labelled import read_labelled
from rnnkit.data.labelled_sets import download_set


def _resource(name, path):
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    return download.Resource(name, path.as_uri(), digest, path.name)


def test_imdb_is_unpacked_into_train_and_test_folders(tmp_path, monkeypatch):
    archive = tmp_path / "aclImdb_v1.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for name, text in (("train/pos/0_9.txt", b"great"), ("train/neg/1_2.txt", b"dull"),
                           ("test/pos/2_8.txt", b"fine"), ("test/neg/3_1.txt", b"flat")):
            info = tarfile.TarInfo(f"aclImdb/{name}")
            info.size = len(text)
            tar.addfile(info, io.BytesIO(text))
    monkeypatch.setattr(download, "RESOURCES", {"imdb": _resource("imdb", archive)})
    found = download_set("imdb", tmp_path / "cache")
    assert found.format == "imdb" and found.val is None
    assert found.train == tmp_path / "cache" / "imdb" / "aclImdb" / "train"
    assert [e.text for e in read_labelled(found.train, format="imdb").examples] == ["dull",
                                                                                  "great"]
    assert [e.label for e in read_labelled(found.test, format="imdb").examples] == ["neg",
                                                                                  "pos"]


def test_sst2_is_two_files(tmp_path, monkeypatch):
    files = {}
    for name in ("sst2-train", "sst2-dev"):
        (tmp_path / name).write_text("1 good\n", encoding="utf-8")
        files[name] = _resource(name, tmp_path / name)
    monkeypatch.setattr(download, "RESOURCES", files)
    found = download_set("sst2", tmp_path / "cache")
    assert (found.train, found.val, found.test, found.format) == (
        tmp_path / "cache" / "sst2-train", tmp_path / "cache" / "sst2-dev", None, None)
