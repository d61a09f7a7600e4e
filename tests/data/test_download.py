"""Downloads: served from a local HTTP server on 127.0.0.1 (never the internet), checksums,
the cache, offline errors and safe tar extraction."""

from __future__ import annotations

import hashlib
import http.server
import io
import re
import socket
import tarfile
import threading
import zipfile
from pathlib import Path

import pytest

from rnnkit.data.download import (
    RESOURCES,
    DownloadError,
    Resource,
    default_cache_dir,
    extract_tar,
    extract_zip,
    fetch,
    sha256_of,
)

DATA = b"1 a fine film .\n0 a dull one .\n" * 100


@pytest.fixture
def server(tmp_path):
    """A loopback HTTP server of the folder ``served``; ``server.requests`` counts GETs."""
    served = tmp_path / "served"
    served.mkdir()
    (served / "data.txt").write_bytes(DATA)
    requests: list[str] = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(served), **kwargs)

        def do_GET(self):  # noqa: N802 - the name http.server calls
            requests.append(self.path)
            super().do_GET()

        def log_message(self, *args):  # keep the test output clean
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.01},
                              daemon=True)
    thread.start()
    httpd.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.requests = requests
    yield httpd
    httpd.shutdown()
    httpd.server_close()
    thread.join()


def resource(url: str, sha256: str = hashlib.sha256(DATA).hexdigest(), **kw) -> Resource:
    return Resource("toy", url, sha256, "toy.txt", **kw)


def test_registry():
    assert {"sst2-train", "sst2-dev", "sst2-phrases", "imdb"} <= set(RESOURCES)
    for name, r in RESOURCES.items():
        assert r.name == name and re.fullmatch(r"[0-9a-f]{64}", r.sha256)
        assert r.url.startswith("https://")


def test_sst2_checksums_match_shared_copies():
    """The pinned sha256 are those of the byte-identical copies in the shared data, if here."""
    folder = Path("/work/shared/data/sst2")
    for name, filename in [("sst2-train", "stsa.binary.train"), ("sst2-dev", "stsa.binary.dev")]:
        if not (folder / filename).is_file():
            pytest.skip("shared SST-2 copies not present")
        assert sha256_of(folder / filename) == RESOURCES[name].sha256


def test_download_checked_and_cached(server, tmp_path, capsys):
    cache = tmp_path / "cache"
    r = resource(server.url + "/data.txt")
    path = fetch(r, cache, progress=True)
    assert path == cache / "toy.txt" and path.read_bytes() == DATA
    assert "toy.txt" in capsys.readouterr().err  # the progress bar goes to stderr
    assert fetch(r, cache, progress=False) == path  # cached: no second request
    assert server.requests == ["/data.txt"]
    assert sorted(p.name for p in cache.iterdir()) == ["toy.txt"]  # no temp files left


def test_corrupt_cached_copy_downloaded_again(server, tmp_path):
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "toy.txt").write_bytes(b"truncated")
    assert fetch(resource(server.url + "/data.txt"), cache, progress=False).read_bytes() == DATA
    assert len(server.requests) == 1


def test_checksum_mismatch(server, tmp_path):
    cache = tmp_path / "cache"
    wrong = "0" * 64
    with pytest.raises(DownloadError, match=re.escape(
            f"expected {wrong}, got {hashlib.sha256(DATA).hexdigest()}")):
        fetch(resource(server.url + "/data.txt", wrong), cache, progress=False)
    assert list(cache.iterdir()) == []  # neither the file nor the temp file is left


def test_http_error(server, tmp_path):
    with pytest.raises(DownloadError, match="HTTP 404"):
        fetch(resource(server.url + "/missing.txt"), tmp_path, progress=False)


def test_offline_error_is_actionable(tmp_path):
    with socket.socket() as s:  # a loopback port that nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/stsa.binary.train"
    r = Resource("sst2-train", url, "ab" * 32, "stsa.binary.train", "--train")
    with pytest.raises(DownloadError, match=re.escape(f"cannot download sst2-train from {url}: ")
                       ) as info:
        fetch(r, tmp_path / "cache", progress=False)
    assert str(info.value).endswith("download it by hand (sha256 " + "ab" * 32
                                    + ") and pass the file with --train")
    assert list((tmp_path / "cache").iterdir()) == []
    no_option = Resource("x", url, "ab" * 32, "x.bin")
    with pytest.raises(DownloadError, match=re.escape(f"put it at {tmp_path / 'x.bin'}")):
        fetch(no_option, tmp_path, progress=False)


def test_file_url_and_default_cache_dir(tmp_path, monkeypatch):
    source = tmp_path / "src.txt"
    source.write_bytes(DATA)
    monkeypatch.setenv("RNNKIT_DATA", str(tmp_path / "env-cache"))
    assert default_cache_dir() == tmp_path / "env-cache"
    assert fetch(resource(source.as_uri()), progress=False) == tmp_path / "env-cache" / "toy.txt"
    monkeypatch.delenv("RNNKIT_DATA")
    assert default_cache_dir() == Path.home() / ".cache" / "rnnkit"


def test_unknown_name():
    with pytest.raises(KeyError, match="sst2-train"):
        fetch("sst3")


# ------------------------------------------------------------------------------- archives
def make_tar(path: Path, members: dict[str, bytes], links: dict[str, str] | None = None) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type, info.linkname = tarfile.SYMTYPE, target
            tar.addfile(info)
    return path


def test_extract_tar(tmp_path):
    archive = make_tar(tmp_path / "a.tar.gz", {"aclImdb/train/pos/0_9.txt": b"great",
                                               "aclImdb/README": b"readme"})
    out = extract_tar(archive, tmp_path / "out")
    assert (out / "aclImdb" / "train" / "pos" / "0_9.txt").read_bytes() == b"great"


def test_extract_not_a_tar(tmp_path):
    bad = tmp_path / "bad.tar.gz"
    bad.write_bytes(b"not a tar")
    with pytest.raises(DownloadError, match="cannot extract"):
        extract_tar(bad, tmp_path / "out")


def make_zip(path: Path, members: dict[str, bytes], links: dict[str, str] | None = None) -> Path:
    with zipfile.ZipFile(path, "w") as bundle:
        for name, data in members.items():
            bundle.writestr(name, data)
        for name, target in (links or {}).items():
            info = zipfile.ZipInfo(name)
            info.external_attr = 0o120777 << 16  # a symbolic link, as Info-ZIP stores one
            bundle.writestr(info, target)
    return path


def test_extract_zip(tmp_path):
    archive = make_zip(tmp_path / "SST-2.zip", {"SST-2/train.tsv": b"sentence\tlabel\nfine \t1\n",
                                                 "SST-2/dev.tsv": b"sentence\tlabel\n"})
    out = extract_zip(archive, tmp_path / "out")
    assert (out / "SST-2" / "train.tsv").read_bytes() == b"sentence\tlabel\nfine \t1\n"


@pytest.mark.parametrize(("make", "extract", "name"), [(make_tar, extract_tar, "bad.tar.gz"),
                                                     (make_zip, extract_zip, "bad.zip")])
@pytest.mark.parametrize(("members", "links", "why"), [
    ({"ok.txt": b"x", "../x": b"evil"}, None, "'..'"),
    ({"a/../../x": b"evil"}, None, "'..'"),
    ({"/etc/x": b"evil"}, None, "absolute"),
    ({}, {"link": "/etc/passwd"}, "link"),
])
def test_extract_refuses_unsafe_members(tmp_path, make, extract, name, members, links, why):
    archive = make(tmp_path / name, members, links)
    with pytest.raises(DownloadError, match=f"refusing member .*{re.escape(why)}"):
        extract(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists()  # checked before anything is written
    assert not (tmp_path / "x").exists()


def test_extract_not_a_zip(tmp_path):
    bad = tmp_path / "bad.zip"
    bad.write_bytes(b"not a zip")
    with pytest.raises(DownloadError, match="cannot extract"):
        extract_zip(bad, tmp_path / "out")
