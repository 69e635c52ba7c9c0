"""Download and unpack the benchmark datasets: resumable, checksum-verified, traversal-safe.

Usage: ``python -m clearer_nni.data.download set12 bsd68 --root ~/.cache/clearer_nni/data``.
"""
from __future__ import annotations

import argparse
import hashlib
import http.client
import json
import os
import re
import sys
import tarfile
import tempfile
import time
import zipfile
from pathlib import Path, PurePosixPath
from typing import Iterable, Optional, Sequence, Union
from urllib.error import HTTPError, URLError
from urllib.request import Request, urlopen

from .datasets import default_data_root
from .images import DataError

__all__ = ["DATASETS", "download", "extract_archive", "fetch_dataset", "files_digest", "sha256_file"]

_DNCNN = "https://raw.githubusercontent.com/cszn/DnCNN/e93b27812d3ff523a3a79d19e5e50d233d7a8d0a/"

#: Where each dataset comes from and how it lands under the data root.
#:
#: ``kind="archive"``: ``urls`` (mirrors, tried in order) of one archive with SHA-256 ``sha256``
#: (``None``: not published; the first download prints the hash to pin), unpacked into the root;
#: ``layout`` is the folder it creates. ``kind="files"``: every name in ``files`` fetched from
#: ``base_url + name`` into ``root/folder``; ``sha256`` is :func:`files_digest` of the set (what
#: ``sha256sum * | sha256sum`` prints there). ``kind="manual"``: no scriptable source; see ``notes``.
DATASETS: dict[str, dict] = {
    "bsds500": {
        "kind": "archive",
        "urls": ["http://www.eecs.berkeley.edu/Research/Projects/CS/vision/grouping/BSR/BSR_bsds500.tgz"],
        "filename": "BSR_bsds500.tgz",
        "sha256": None,  # Berkeley publishes no checksum
        "folder": "BSR",
        "layout": "BSR/BSDS500/data/images/{train,val,test}/*.jpg",
        "notes": "Official BSR tarball (images plus segmentations and benchmark code). Mirror of the images: "
                 "https://github.com/BIDS/BSDS500 (BSDS500/data/images).",
    },
    "set12": {
        "kind": "files",
        "base_url": _DNCNN + "testsets/Set12/",
        "files": [f"{i:02d}.png" for i in range(1, 13)],
        "sha256": "9882b0bb611c6b511fce0fffe533ce92db96202de165317304b409e6176ee5b9",
        "folder": "Set12",
        "layout": "Set12/01.png ... 12.png",
        "notes": "cszn/DnCNN testsets/Set12 at commit e93b278.",
    },
    "bsd68": {
        "kind": "files",
        "base_url": _DNCNN + "testsets/BSD68/",
        "files": [f"test{i:03d}.png" for i in range(1, 69)],
        "sha256": "7db47364c17c50e5bfad018afe5dd55a89a863134adcaedfff4bcec1347ad3cc",
        "folder": "BSD68",
        "layout": "BSD68/test001.png ... test068.png",
        "notes": "cszn/DnCNN testsets/BSD68 at commit e93b278 (68 images of BSDS500 val, gray).",
    },
    "bsd400": {
        "kind": "files",
        "base_url": _DNCNN + "TrainingCodes/DnCNN_TrainingCodes_v1.0/data/Train400/",
        "files": [f"test_{i:03d}.png" for i in range(1, 401)],
        "sha256": "d9a4d048a6c132976302736b8659e9b8ee5489c8f5d5a90815324cd50e72ce0e",
        "folder": "BSD400",
        "layout": "BSD400/test_001.png ... test_400.png",
        "notes": "cszn/DnCNN Train400 at commit e93b278 (400 gray 180x180 training images).",
    },
    "rain800": {
        "kind": "manual",
        "urls": ["https://drive.google.com/open?id=0Bw2e6Q0nQQvGbi1xV1Yxd09rY2s"],
        "sha256": None,
        "folder": "Rain800",
        "layout": "Rain800/training/*.jpg (700), Rain800/test_syn/*.jpg (100); each file is a "
                  "side-by-side pair: clean LEFT, rainy RIGHT",
        "notes": "ID-CGAN release (hezhangsprinter/ID-CGAN) on Google Drive, not scriptable: download "
                 "it in a browser, unpack, and move its training/ and test_syn/ folders to "
                 "<root>/Rain800/.",
    },
}

_CHUNK = 1 << 20
_HEX64 = re.compile(r"^[0-9a-fA-F]{64}$")


def sha256_file(path: Union[str, os.PathLike]) -> str:
    """Hex SHA-256 of a file."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(_CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def files_digest(folder: Union[str, os.PathLike], names: Iterable[str]) -> str:
    """SHA-256 of a file set: the hash of ``"<sha256>  <name>\\n"`` lines in byte order of names.

    Equals ``LC_ALL=C sha256sum <names sorted> | sha256sum`` run in ``folder``.
    """
    lines = "".join(f"{sha256_file(Path(folder) / n)}  {n}\n" for n in sorted(names))
    return hashlib.sha256(lines.encode("utf-8")).hexdigest()


def _check_sha(sha256: Optional[str]) -> Optional[str]:
    if sha256 is None:
        return None
    if not isinstance(sha256, str) or not _HEX64.match(sha256):
        raise DataError(f"sha256 must be 64 hex digits or None, got {sha256!r}")
    return sha256.lower()


def _total_from_content_range(value: Optional[str]) -> Optional[int]:
    m = re.match(r"bytes\s+(?:\d+-\d+|\*)/(\d+)", value or "")
    return int(m.group(1)) if m else None


def download(url: str, dest: Union[str, os.PathLike], sha256: Optional[str] = None, resume: bool = True,
             progress: bool = True, timeout: float = 60.0) -> Path:
    """Download ``url`` to ``dest``: streamed into ``dest + ".part"``, verified, renamed atomically.

    Parameters
    ----------
    url : str
        HTTP(S) URL.
    dest : str or os.PathLike
        Final file. An existing ``dest`` with the right checksum (or any, when ``sha256`` is None) is
        kept and nothing is downloaded.
    sha256 : str, optional
        Expected hex SHA-256. ``None``: not checked; the digest is printed (to stderr) for pinning.
    resume : bool, default True
        Continue an existing ``.part`` with an HTTP Range request (restarts if the server ignores it).
    progress : bool, default True
        Show a tqdm progress bar.
    timeout : float, default 60
        Socket timeout in seconds.

    Returns
    -------
    pathlib.Path
        ``dest``.

    Raises
    ------
    DataError
        HTTP or network failure (the ``.part`` is kept for resuming), or checksum mismatch (the
        ``.part`` is deleted and nothing is left at ``dest``).
    """
    from tqdm.auto import tqdm

    expected = _check_sha(sha256)
    dest = Path(dest)
    part = dest.with_name(dest.name + ".part")
    if dest.exists():
        if expected is None or sha256_file(dest) == expected:
            return dest
        dest.unlink()  # stale or corrupt copy: fetch it again
    dest.parent.mkdir(parents=True, exist_ok=True)
    if not resume:
        part.unlink(missing_ok=True)
    offset = part.stat().st_size if part.exists() else 0

    request = Request(url, headers={"User-Agent": "clearer-nni-downloader"})
    if offset:
        request.add_header("Range", f"bytes={offset}-")
    total: Optional[int] = None
    try:
        response = urlopen(request, timeout=timeout)  # noqa: S310 - URLs come from DATASETS/the user
    except HTTPError as exc:
        if exc.code == 416 and offset:
            # Range not satisfiable: the .part is already whole (verified below) or longer than the file
            total = _total_from_content_range(exc.headers.get("Content-Range"))
            exc.close()
            if total != offset:
                part.unlink(missing_ok=True)
                return download(url, dest, sha256, resume=False, progress=progress, timeout=timeout)
            response = None
        else:
            raise DataError(f"{url}: download failed, HTTP {exc.code} {exc.reason}") from exc
    except (URLError, OSError, ValueError, http.client.HTTPException) as exc:
        reason = getattr(exc, "reason", exc)
        raise DataError(f"{url}: download failed ({reason})") from exc

    if response is not None:
        with response:
            status = getattr(response, "status", 200)
            if offset and status == 206:
                start = re.match(r"bytes\s+(\d+)-", response.headers.get("Content-Range", ""))
                if not start or int(start.group(1)) != offset:
                    raise DataError(f"{url}: server answered the resume request with an unexpected "
                                    f"range {response.headers.get('Content-Range')!r}; delete {part}")
                total = _total_from_content_range(response.headers.get("Content-Range"))
                mode = "ab"
            else:
                offset, mode = 0, "wb"  # a 200 answer restarts from the beginning
                length = response.headers.get("Content-Length")
                total = int(length) if length and length.isdigit() else None
            try:
                with open(part, mode) as f, tqdm(total=total, initial=offset, unit="B", unit_scale=True,
                                                 desc=dest.name, disable=not progress, leave=False) as bar:
                    while True:
                        block = response.read(_CHUNK)
                        if not block:
                            break
                        f.write(block)
                        bar.update(len(block))
            except (OSError, http.client.HTTPException) as exc:
                raise DataError(f"{url}: download interrupted ({exc}); run again to resume from {part}") from exc

    size = part.stat().st_size
    if total is not None and size != total:
        raise DataError(f"{url}: download incomplete ({size} of {total} bytes); run again to resume "
                        f"from {part}")
    digest = sha256_file(part)
    if expected is not None and digest != expected:
        part.unlink(missing_ok=True)
        raise DataError(f"{url}: SHA-256 mismatch for {dest.name}: expected {expected}, got {digest}; "
                        "the download was deleted")
    if expected is None:
        print(f"sha256 {digest}  {dest.name}  (no checksum pinned for {url}; pin this one)",
              file=sys.stderr)
    os.replace(part, dest)
    return dest


def _is_within(base: Path, target: Path) -> bool:
    try:
        target.relative_to(base)
        return True
    except ValueError:
        return False


def _check_member_path(base: Path, name: str, archive: Path) -> Path:
    if not name or name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name):
        raise DataError(f"{archive}: refusing archive member {name!r}: absolute path")
    target = (base / name).resolve()
    if not _is_within(base, target):
        raise DataError(f"{archive}: refusing archive member {name!r}: it would be written outside "
                        f"{base}")
    return target


def extract_archive(archive: Union[str, os.PathLike], dest: Union[str, os.PathLike]) -> list[str]:
    """Unpack a tar (any compression) or zip archive into ``dest``, refusing unsafe members.

    Every member is checked before anything is written: absolute paths, ``..`` escapes, links
    pointing outside ``dest`` and device/FIFO members make the whole archive refused.

    Parameters
    ----------
    archive : str or os.PathLike
        ``.tar``, ``.tar.gz``/``.tgz``, ``.tar.bz2``, ``.tar.xz`` or ``.zip``.
    dest : str or os.PathLike
        Target folder (created).

    Returns
    -------
    list of str
        Top-level names the archive created, sorted.

    Raises
    ------
    DataError
        Unsafe member, unreadable or unsupported archive.
    """
    archive, dest = Path(archive), Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    base = dest.resolve()
    names: list[str] = []
    try:
        if tarfile.is_tarfile(archive):
            with tarfile.open(archive, "r:*") as tar:
                members = tar.getmembers()
                for m in members:
                    target = _check_member_path(base, m.name, archive)
                    if m.issym() or m.islnk():
                        link_base = target.parent if m.issym() else base
                        if m.linkname.startswith("/") or not _is_within(base, (link_base / m.linkname).resolve()):
                            raise DataError(f"{archive}: refusing link member {m.name!r} -> "
                                            f"{m.linkname!r}: it points outside {base}")
                    elif not (m.isfile() or m.isdir()):
                        raise DataError(f"{archive}: refusing special member {m.name!r} (device or FIFO)")
                    names.append(m.name)
                if hasattr(tarfile, "data_filter"):  # second line of defence (Python >= 3.11.4)
                    tar.extractall(base, members=members, filter="data")
                else:  # pragma: no cover - older Pythons; members were checked above
                    tar.extractall(base, members=members)
        elif zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as zf:
                for info in zf.infolist():
                    _check_member_path(base, info.filename, archive)
                    names.append(info.filename)
                zf.extractall(base)
        else:
            raise DataError(f"{archive}: not a tar or zip archive (or corrupt)")
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError) as exc:
        raise DataError(f"{archive}: cannot unpack ({exc})") from exc
    tops = set()
    for n in names:
        parts = [x for x in PurePosixPath(n.replace("\\", "/")).parts if x not in (".", "")]
        if parts:
            tops.add(parts[0])
    return sorted(tops)


def _marker(root: Path, name: str) -> Path:
    return root / f".{name}.complete"


def _write_marker(root: Path, name: str, info: dict) -> None:
    try:
        _marker(root, name).write_text(json.dumps({**info, "completed": time.strftime("%Y-%m-%dT%H:%M:%S")}))
    except OSError:
        pass  # a read-only root that already holds the verified files is fine


def _fetch_archive(name: str, spec: dict, root: Path, progress: bool) -> Path:
    downloads = root / ".downloads"
    archive = downloads / spec["filename"]
    errors = []
    for url in spec["urls"]:
        try:
            download(url, archive, spec.get("sha256"), progress=progress)
            break
        except DataError as exc:
            errors.append(str(exc))
    else:
        raise DataError(f"dataset {name!r}: every source failed: " + " | ".join(errors))
    # unpack beside the root, then move into place, so a crash never leaves a half folder in the root
    with tempfile.TemporaryDirectory(prefix=f".{name}-unpack-", dir=root) as tmp:
        tops = extract_archive(archive, tmp)
        for top in tops:
            if (root / top).exists():
                raise DataError(f"{root / top} already exists but dataset {name!r} is not marked "
                                f"complete ({_marker(root, name)} missing); remove it and run again")
        for top in tops:
            os.replace(Path(tmp) / top, root / top)
    archive.unlink(missing_ok=True)
    return root / spec["folder"]


def _fetch_files(name: str, spec: dict, root: Path, progress: bool) -> Path:
    folder = root / spec["folder"]
    files: Sequence[str] = spec["files"]
    missing = [f for f in files if not (folder / f).exists()]
    if missing:
        folder.mkdir(parents=True, exist_ok=True)
    from tqdm.auto import tqdm

    for f in tqdm(missing, desc=name, unit="file", disable=not progress or not missing, leave=False):
        download(spec["base_url"] + f, folder / f, None, progress=False)
    expected = spec.get("sha256")
    if expected is not None:
        digest = files_digest(folder, files)
        if digest != expected:
            for f in missing:
                (folder / f).unlink(missing_ok=True)
            raise DataError(f"dataset {name!r}: file-set SHA-256 mismatch in {folder}: expected {expected}, "
                            f"got {digest}; the files downloaded now were deleted")
    return folder


def fetch_dataset(name: str, root: Optional[Union[str, os.PathLike]] = None, progress: bool = True) -> Path:
    """Download (if needed) and unpack dataset ``name`` under ``root``; write a completion marker.

    Parameters
    ----------
    name : str
        A key of :data:`DATASETS` (``bsds500``, ``set12``, ``bsd68``, ``bsd400``; ``rain800`` is
        manual and raises with instructions).
    root : str or os.PathLike, optional
        Data root; default :func:`clearer_nni.data.datasets.default_data_root`.
    progress : bool, default True
        Show progress bars.

    Returns
    -------
    pathlib.Path
        The dataset's folder under ``root``.

    Raises
    ------
    DataError
        Unknown or manual dataset, failed download, checksum mismatch or unsafe archive.
    """
    key = str(name).lower()
    spec = DATASETS.get(key)
    if spec is None:
        raise DataError(f"unknown dataset {name!r} to download; known: {sorted(DATASETS)}")
    root = Path(root).expanduser() if root is not None else default_data_root()
    if _marker(root, key).exists():
        return root / spec["folder"]
    if spec["kind"] == "manual":
        raise DataError(f"dataset {key!r} cannot be downloaded by script. {spec['notes']} "
                        f"Source: {spec['urls'][0]}. Expected layout under {root}: {spec['layout']}")
    root.mkdir(parents=True, exist_ok=True)
    if spec["kind"] == "archive":
        folder = _fetch_archive(key, spec, root, progress)
    elif spec["kind"] == "files":
        folder = _fetch_files(key, spec, root, progress)
    else:
        raise DataError(f"dataset {key!r}: unknown source kind {spec['kind']!r}")
    _write_marker(root, key, {"dataset": key, "sha256": spec.get("sha256"), "folder": spec["folder"]})
    return folder


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Command line: ``python -m clearer_nni.data.download NAME... [--root DIR]``."""
    parser = argparse.ArgumentParser(prog="python -m clearer_nni.data.download",
                                     description="Download benchmark datasets for clearer-nni.")
    parser.add_argument("names", nargs="+", choices=sorted(DATASETS), metavar="NAME",
                        help=f"one or more of {', '.join(sorted(DATASETS))}")
    parser.add_argument("--root", default=None, help="data root (default: $CLEARER_DATA_ROOT, "
                        "a source checkout's ../shared/data if present, else ~/.cache/clearer_nni/data)")
    args = parser.parse_args(argv)
    status = 0
    for n in args.names:
        try:
            print(fetch_dataset(n, args.root))
        except DataError as exc:
            print(f"error: {exc}", file=sys.stderr)
            status = 1
    return status


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
