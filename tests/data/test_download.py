"""The download helper against a local HTTP server (127.0.0.1, with Range support); no internet."""
from __future__ import annotations

import hashlib
import io
import re
import tarfile
import threading
import zipfile
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from clearer_nni.data import download as dl
from clearer_nni.data.datasets import load_dataset
from clearer_nni.data.images import DataError


class RangeHandler(SimpleHTTPRequestHandler):
    """Static files with single-range ``Range: bytes=N-`` support; records the Range headers seen."""

    ranges: list = []

    def log_message(self, *args):  # keep test output quiet
        pass

    def do_GET(self):
        # /norange/<file>: ignore Range (answer 200); /short/<file>: send half the body, then hang up
        mode, _, rest = self.path.lstrip("/").partition("/")
        if mode not in ("norange", "short"):
            mode, rest = "", self.path
        path = Path(self.translate_path("/" + rest.lstrip("/")))
        if not path.is_file():
            self.send_error(404)
            return
        data = path.read_bytes()
        header = self.headers.get("Range")
        type(self).ranges.append(header)
        if mode == "short":
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data[: len(data) // 2])
            self.close_connection = True
            return
        m = re.match(r"bytes=(\d+)-$", header or "") if mode != "norange" else None
        if m:
            start = int(m.group(1))
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            body = data[start:]
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            body = data
            self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture()
def server(tmp_path, monkeypatch):
    """Serve ``tmp_path / "www"``; yields (base_url, folder)."""
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")  # never route the local server via a proxy
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    www = tmp_path / "www"
    www.mkdir()
    RangeHandler.ranges = []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), partial(RangeHandler, directory=str(www)))
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/", www
    finally:
        httpd.shutdown()
        httpd.server_close()


def _png_bytes(value: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.full((24, 24, 3), value, np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def _make_tgz(path: Path, members: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_download_success_with_checksum(server, tmp_path):
    base, www = server
    payload = np.random.default_rng(0).bytes(300_000)
    (www / "blob.bin").write_bytes(payload)
    out = dl.download(base + "blob.bin", tmp_path / "dl" / "blob.bin", sha256=_sha(payload), progress=False)
    assert out.read_bytes() == payload
    assert not (tmp_path / "dl" / "blob.bin.part").exists()
    # already there and verified: no second request
    n = len(RangeHandler.ranges)
    dl.download(base + "blob.bin", out, sha256=_sha(payload), progress=False)
    assert len(RangeHandler.ranges) == n


def test_download_resumes_from_part(server, tmp_path):
    base, www = server
    payload = np.random.default_rng(1).bytes(200_000)
    (www / "blob.bin").write_bytes(payload)
    dest = tmp_path / "blob.bin"
    Path(str(dest) + ".part").write_bytes(payload[:50_000])
    dl.download(base + "blob.bin", dest, sha256=_sha(payload), progress=False)
    assert dest.read_bytes() == payload
    assert RangeHandler.ranges[-1] == "bytes=50000-"
    # a .part that is already whole: the server answers 416 and the file is verified as it is
    dest.unlink()
    Path(str(dest) + ".part").write_bytes(payload)
    dl.download(base + "blob.bin", dest, sha256=_sha(payload), progress=False)
    assert dest.read_bytes() == payload


def test_download_server_ignoring_range_restarts(server, tmp_path):
    base, www = server
    payload = np.random.default_rng(2).bytes(50_000)
    (www / "blob.bin").write_bytes(payload)
    dest = tmp_path / "blob.bin"
    Path(str(dest) + ".part").write_bytes(b"stale bytes from another file")
    dl.download(base + "norange/blob.bin", dest, sha256=_sha(payload), progress=False)
    assert dest.read_bytes() == payload


def test_interrupted_download_keeps_part_then_resumes(server, tmp_path):
    base, www = server
    payload = np.random.default_rng(3).bytes(80_000)
    (www / "blob.bin").write_bytes(payload)
    dest = tmp_path / "blob.bin"
    with pytest.raises(DataError, match="incomplete|interrupted"):
        dl.download(base + "short/blob.bin", dest, sha256=_sha(payload), progress=False)
    part = Path(str(dest) + ".part")
    assert not dest.exists() and part.stat().st_size == 40_000
    dl.download(base + "blob.bin", dest, sha256=_sha(payload), progress=False)
    assert dest.read_bytes() == payload and RangeHandler.ranges[-1] == "bytes=40000-"


def test_download_without_checksum_prints_it(server, tmp_path, capsys):
    base, www = server
    (www / "x.bin").write_bytes(b"hello")
    dl.download(base + "x.bin", tmp_path / "x.bin", progress=False)
    assert _sha(b"hello") in capsys.readouterr().err


def test_checksum_mismatch_leaves_nothing(server, tmp_path):
    base, www = server
    (www / "blob.bin").write_bytes(b"payload")
    dest = tmp_path / "blob.bin"
    with pytest.raises(DataError, match="SHA-256 mismatch"):
        dl.download(base + "blob.bin", dest, sha256="0" * 64, progress=False)
    assert list(tmp_path.glob("blob.bin*")) == []


def test_http_error(server, tmp_path):
    base, _ = server
    with pytest.raises(DataError, match="HTTP 404"):
        dl.download(base + "missing.bin", tmp_path / "m.bin", progress=False)
    with pytest.raises(DataError, match="sha256 must be"):
        dl.download(base + "missing.bin", tmp_path / "m.bin", sha256="abc", progress=False)


def test_fetch_archive_dataset(server, tmp_path, monkeypatch):
    base, www = server
    members = {f"BSR/BSDS500/data/images/{s}/{i}.jpg": _png_bytes(40 * i) for s in ("train", "val", "test")
               for i in (1, 2)}
    archive = _make_tgz(www / "bsr.tgz", members)
    spec = {**dl.DATASETS["bsds500"], "urls": [base + "nope.tgz", base + "bsr.tgz"],
            "sha256": _sha(archive.read_bytes())}
    monkeypatch.setitem(dl.DATASETS, "bsds500", spec)
    root = tmp_path / "data"
    folder = dl.fetch_dataset("bsds500", root, progress=False)
    assert folder == root / "BSR" and (root / ".bsds500.complete").exists()
    assert not (root / ".downloads" / "bsr.tgz").exists()
    assert not [p for p in root.iterdir() if p.name.startswith(".bsds500-unpack")]
    d = load_dataset("bsds500", "val", root=str(root))  # the official tarball layout loads
    assert len(d) == 2
    n = len(RangeHandler.ranges)
    dl.fetch_dataset("bsds500", root, progress=False)  # marker present: nothing fetched
    assert len(RangeHandler.ranges) == n


def test_fetch_files_dataset(server, tmp_path, monkeypatch):
    base, www = server
    names = ["01.png", "02.png"]
    (www / "set").mkdir()
    for i, n in enumerate(names):
        (www / "set" / n).write_bytes(_png_bytes(10 * i))
    digest = dl.files_digest(www / "set", names)
    spec = {**dl.DATASETS["set12"], "base_url": base + "set/", "files": names, "sha256": digest}
    monkeypatch.setitem(dl.DATASETS, "set12", spec)
    folder = dl.fetch_dataset("set12", tmp_path / "data", progress=False)
    assert sorted(p.name for p in folder.iterdir()) == names
    assert len(load_dataset("set12", "test", root=str(tmp_path / "data"))) == 2
    bad = {**spec, "sha256": "f" * 64}
    monkeypatch.setitem(dl.DATASETS, "set12", bad)
    with pytest.raises(DataError, match="file-set SHA-256 mismatch"):
        dl.fetch_dataset("set12", tmp_path / "other", progress=False)
    assert not list((tmp_path / "other" / "Set12").iterdir())


def test_files_digest_matches_sha256sum_convention(tmp_path):
    (tmp_path / "b").write_bytes(b"2")
    (tmp_path / "a").write_bytes(b"1")
    lines = f"{_sha(b'1')}  a\n{_sha(b'2')}  b\n"
    assert dl.files_digest(tmp_path, ["b", "a"]) == _sha(lines.encode())


@pytest.mark.parametrize("evil", ["../evil.txt", "/tmp/abs-evil.txt", "ok/../../evil.txt"])
def test_path_traversal_member_refused(tmp_path, evil):
    archive = _make_tgz(tmp_path / "evil.tgz", {"ok/a.txt": b"a", evil: b"pwned"})
    dest = tmp_path / "out"
    with pytest.raises(DataError, match="refusing archive member"):
        dl.extract_archive(archive, dest)
    assert not (tmp_path / "evil.txt").exists()
    assert not list(dest.iterdir())  # checked before anything was written


def test_link_member_escaping_refused(tmp_path):
    archive = tmp_path / "link.tar"
    with tarfile.open(archive, "w") as tar:
        info = tarfile.TarInfo("data/link")
        info.type = tarfile.SYMTYPE
        info.linkname = "../../etc/passwd"
        tar.addfile(info)
    with pytest.raises(DataError, match="points outside"):
        dl.extract_archive(archive, tmp_path / "out")


def test_zip_traversal_refused_and_plain_zip_ok(tmp_path):
    good = tmp_path / "good.zip"
    with zipfile.ZipFile(good, "w") as zf:
        zf.writestr("top/a.txt", "a")
    assert dl.extract_archive(good, tmp_path / "g") == ["top"]
    bad = tmp_path / "bad.zip"
    with zipfile.ZipFile(bad, "w") as zf:
        zf.writestr("../evil.txt", "x")
    with pytest.raises(DataError, match="refusing archive member"):
        dl.extract_archive(bad, tmp_path / "b")
    junk = tmp_path / "junk.tgz"
    junk.write_bytes(b"not an archive")
    with pytest.raises(DataError, match="not a tar or zip"):
        dl.extract_archive(junk, tmp_path / "j")


def test_manual_and_unknown_datasets(tmp_path):
    with pytest.raises(DataError, match=r"rain800.*cannot be downloaded by script.*Rain800/training"):
        dl.fetch_dataset("rain800", tmp_path)
    with pytest.raises(DataError, match="unknown dataset"):
        dl.fetch_dataset("imagenet", tmp_path)


def test_pinned_file_set_digests_match_shared_data():
    shared = Path(__file__).resolve().parents[2].parent / "shared" / "data"
    if not shared.is_dir():
        pytest.skip(f"{shared} not present: the shared datasets sit beside the clone in CI only")
    for name in ("set12", "bsd68", "bsd400"):
        spec = dl.DATASETS[name]
        assert dl.files_digest(shared / spec["folder"], spec["files"]) == spec["sha256"], name


def test_registry_entries_are_well_formed():
    for name, spec in dl.DATASETS.items():
        assert spec["kind"] in ("archive", "files", "manual"), name
        assert spec["sha256"] is None or re.fullmatch(r"[0-9a-f]{64}", spec["sha256"]), name
        if spec["kind"] == "files":
            assert spec["base_url"].startswith("https://") and spec["files"]
