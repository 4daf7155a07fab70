"""Where data set files come from: the search order of DESIGN.md and a verified download.

Search order for each file: ``data_dir`` (the --data-dir option), ``$NUMBACNN_DATA``, the user
cache (``~/.cache/numbacnn/<name>``, or ``$XDG_CACHE_HOME``), Debian's
``/usr/share/datasets/<name>`` (``apt-get install dataset-<name>``), and only then a download from
the official mirror into the cache: checksum verified, then renamed into place atomically.
"""

import hashlib
import os
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from .idx import DataError

# Accepted MD5s per file: the official archive, and Debian's repacked gzip where it differs.
SPECS = {
    "fashion-mnist": {
        "mirror": "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        "apt": "dataset-fashion-mnist",
        "files": {
            "train-images-idx3-ubyte.gz": ("8d4fb7e6c68d591d4c3dfef9ec88bf0d", "cf8536b0aa1a6ac5fa3f23001093305c"),
            "train-labels-idx1-ubyte.gz": ("25c81989df183df01b3e8a0aad5dffbe", "10bea18fdb374794d4bb42e356e600c9"),
            "t10k-images-idx3-ubyte.gz": ("bef4ecab320f06d8554ea6380940ec79", "f78720b4224f21cce2f2ccf2d7a94c9a"),
            "t10k-labels-idx1-ubyte.gz": ("bb300cfdad3c16e7a12a480ee83cd310", "0d30e22e447f3c33dab9ed536400ac01"),
        },
    },
    "mnist": {
        "mirror": "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "apt": None,
        "files": {
            "train-images-idx3-ubyte.gz": ("f68b3c2dcbeaaa9fbdd348bbdeb94873",),
            "train-labels-idx1-ubyte.gz": ("d53e105ee54ea40749a09fcbcd1e9432",),
            "t10k-images-idx3-ubyte.gz": ("9fb629c4189551a2d022fa330f9573f3",),
            "t10k-labels-idx1-ubyte.gz": ("ec29112dd5afa0611ce80d1b7f02629c",),
        },
    },
    "cifar10": {
        "mirror": "https://www.cs.toronto.edu/~kriz/",
        "apt": None,
        "files": {"cifar-10-binary.tar.gz": ("c32a1d4ab5d03f1284b67883e8d87530",)},
    },
}


def cache_dir():
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "numbacnn"


def search_dirs(name, data_dir=None):
    """The folders searched for data set ``name``, in order."""
    dirs = []
    for root, what in ((data_dir, "--data-dir"), (os.environ.get("NUMBACNN_DATA"), "$NUMBACNN_DATA")):
        if root:
            # A typo here must not silently fall back to another copy of the data.
            if not Path(root).is_dir():
                problem = "is a file, not a folder" if Path(root).exists() else "does not exist"
                raise DataError(f"{what} {root} {problem}")
            dirs += [Path(root) / name, Path(root)]
    dirs += [cache_dir() / name, Path("/usr/share/datasets") / name]
    return dirs


def md5sum(path):
    h = hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def mirror_url(name):
    """The download base URL; ``$NUMBACNN_MIRROR`` overrides it (a local mirror, or tests)."""
    return os.environ.get("NUMBACNN_MIRROR") or SPECS[name]["mirror"]


def find_local(name, filename, data_dir=None):
    """The first local copy of ``filename`` in the search order, or None."""
    for d in search_dirs(name, data_dir):
        candidate = d / filename
        if candidate.is_file():
            return candidate
    return None


def locate(name, filename, data_dir=None, download=True, progress=None):
    """The path of ``filename`` of data set ``name``: found locally, or downloaded and verified."""
    found = find_local(name, filename, data_dir)
    if found is not None:
        return found
    if not download:
        raise DataError(missing_message(name, filename, data_dir))
    return fetch(name, filename, data_dir, progress)


def locate_all(name, data_dir=None, download=True, progress=None):
    """{file: path} of every file of data set ``name``, all from one folder.

    Files found locally must all sit in one folder: a partial copy (some files in --data-dir, the
    rest elsewhere) is refused with where each file was found, rather than silently mixing two
    copies. When no file is found locally, all are downloaded into the cache.
    """
    files = list(SPECS[name]["files"])
    found = {f: find_local(name, f, data_dir) for f in files}
    present = {f: p for f, p in found.items() if p is not None}
    if not present:
        return {f: locate(name, f, data_dir, download, progress) for f in files}
    folders = {p.parent for p in present.values()}
    if len(folders) > 1 or len(present) < len(files):
        lines = [f"  {f}: {found[f] if found[f] else 'not found'}" for f in files]
        raise DataError(
            f"data set '{name}': its files would come from different places:\n" + "\n".join(lines) + "\n"
            "Put all of them in one folder (or remove the partial copy) so that one copy of the data is used."
        )
    return present


def missing_message(name, filename, data_dir=None, reason=None):
    spec = SPECS[name]
    where = "\n  ".join(str(d) for d in search_dirs(name, data_dir))
    how = [f"download it: {mirror_url(name)}{filename} into {cache_dir() / name}/"]
    if spec["apt"]:
        how.insert(0, f"install Debian's package: apt-get install {spec['apt']}")
    msg = f"data set '{name}': {filename} not found. Looked in:\n  {where}\n"
    if reason:
        msg += f"Download failed: {reason}\n"
    return msg + "To get it, " + "; or ".join(how) + " (or pass --data-dir DIR holding the file)."


def fetch(name, filename, data_dir=None, progress=None):
    """Download ``filename`` into the cache, verify its MD5, and rename it into place atomically."""
    accepted = SPECS[name]["files"][filename]
    url = mirror_url(name) + filename
    target_dir = cache_dir() / name
    try:
        target_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DataError(f"cannot create the cache folder {target_dir}: {e.strerror}") from None
    fd, tmp = tempfile.mkstemp(prefix=filename + ".", suffix=".part", dir=target_dir)
    try:
        with os.fdopen(fd, "wb") as out:
            try:
                with urllib.request.urlopen(url, timeout=30) as response:
                    total = int(response.headers.get("Content-Length") or 0)
                    done = 0
                    while True:
                        chunk = response.read(1 << 20)
                        if not chunk:
                            break
                        out.write(chunk)
                        done += len(chunk)
                        if progress:
                            progress(f"downloading {filename}", done, total)
            except (urllib.error.URLError, OSError, ValueError) as e:
                reason = getattr(e, "reason", None) or e
                raise DataError(missing_message(name, filename, data_dir, f"{url}: {reason}")) from None
        if total and done != total:
            raise DataError(f"download of {url} is truncated: {done} of {total} bytes; try again")
        digest = md5sum(tmp)
        if digest not in accepted:
            raise DataError(
                f"download of {url} failed its checksum: MD5 {digest}, expected "
                f"{' or '.join(accepted)}; the file was discarded"
            )
        final = target_dir / filename
        os.replace(tmp, final)
        return final
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def availability(data_dir=None):
    """[{name, available, files: {file: path}, searched: [folders], apt_package}] for every data set
    (``numbacnn datasets`` prints it); ``synthetic`` is always available."""
    rows = []
    for name, spec in SPECS.items():
        paths = {f: find_local(name, f, data_dir) for f in spec["files"]}
        found = {f: str(p) for f, p in paths.items() if p is not None}
        rows.append(
            {
                "name": name,
                "available": len(found) == len(spec["files"]),
                "files": found,
                "searched": [str(d) for d in search_dirs(name, data_dir)],
                "apt_package": spec["apt"],
            }
        )
    rows.append({"name": "synthetic", "available": True, "files": {}, "searched": [], "apt_package": None})
    return rows
