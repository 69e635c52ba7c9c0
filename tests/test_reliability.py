"""Unusual input, round 2 (issue 13): each kind of failure with several examples of it.

Rows 49-62 of docs/BAD_INPUT.md.
"""

from __future__ import annotations

import contextlib
import json
import os
import struct
import subprocess
import sys
import zlib

import numpy as np
import pytest
import torch
from PIL import Image

from clearer_nni import outlock
from clearer_nni.archs import SpaceConfig
from clearer_nni.data import DataError, ImageSet, holdout_split, load_image, read_image, set_max_pixels, write_image
from clearer_nni.evaluate import main as evaluate_main
from clearer_nni.models.tiling import min_tiling
from clearer_nni.restore import main as restore_main
from clearer_nni.retrain import main as retrain_main
from clearer_nni.runtime import DiskFullError, atomic_save
from clearer_nni.search import main as search_main
from conftest import REPO
from test_retrain import FAST, make_checkpoint, make_genotype

TINY_SPACE = str(REPO / "search_spaces" / "tiny.yaml")


def _png(path, h=40, w=40, seed=0, c=1):
    path.parent.mkdir(parents=True, exist_ok=True)
    a = np.random.default_rng(seed).integers(0, 256, (h, w, c)[: 3 if c > 1 else 2], dtype=np.uint8)
    Image.fromarray(a).save(path)
    return path


def _errors(capsys):
    err = capsys.readouterr().err.strip().splitlines()
    lines = [x for x in err if x.startswith("error: ")]
    assert len(lines) == 1, err
    return lines[0]


def _nothing(tmp_path, name):
    return not (tmp_path / name).exists() and not list(tmp_path.glob(f".{name}*"))


@pytest.fixture
def ckpt(tmp_path):
    return make_checkpoint(tmp_path / "m.ckpt")


def _rgb_ckpt(tmp_path):
    geno = make_genotype()
    geno.space = SpaceConfig(in_channels=3, out_channels=3, channels=(4, 8, 16), columns=(2, 2), stem="paper")
    return make_checkpoint(tmp_path / "rgb.ckpt", geno)


# -- 1. restore's output naming and format ---------------------------------------------------------

@pytest.mark.parametrize("output, message", [
    ("out.xyz", "unknown image format '.xyz'"),
    ("out", "no file extension"),
    ("out.gif", "GIF holds 256 colours"),
    ("out.jpg", ".jpg cannot hold 16-bit data"),  # the input is 16-bit
])
def test_restore_refuses_an_output_name_its_format_cannot_hold(tmp_path, capsys, ckpt, output, message):
    src = write_image(tmp_path / "in.png", np.random.default_rng(0).random((40, 40)), bit_depth=16)
    assert restore_main([str(src), "-o", str(tmp_path / output), "--model", str(ckpt)]) == 2
    assert message in _errors(capsys)
    assert not (tmp_path / output).exists() and sorted(p.name for p in tmp_path.iterdir()) == ["in.png", "m.ckpt"]


def test_colour_into_pgm_is_refused_and_a_folder_meant_is_a_folder(tmp_path, capsys):
    rgb = _rgb_ckpt(tmp_path)
    src = _png(tmp_path / "in.png")
    assert restore_main([str(src), "-o", str(tmp_path / "o.pgm"), "--model", str(rgb)]) == 2
    assert ".pgm holds gray images only" in _errors(capsys)
    # a name ending with '/' is a folder: created, the input keeps its name in it
    assert restore_main([str(src), "-o", f"{tmp_path / 'new'}/", "--model", str(rgb)]) == 0
    assert (tmp_path / "new" / "in.png").is_file() and "restored 1 image(s)" in capsys.readouterr().out
    # a folder input with an image-like output name is a mistake, not a folder called x.png
    folder = tmp_path / "imgs"
    _png(folder / "a.png")
    assert restore_main([str(folder), "-o", str(tmp_path / "x.png"), "--model", str(rgb)]) == 2
    assert "the output must be a folder" in _errors(capsys) and not (tmp_path / "x.png").exists()


def test_a_folder_of_gifs_is_written_as_png_and_said(tmp_path, capsys, ckpt):
    folder = tmp_path / "imgs"
    folder.mkdir()
    Image.fromarray(np.zeros((40, 40), np.uint8) + 50).save(folder / "a.gif")
    _png(folder / "b.png")
    assert restore_main([str(folder), "-o", str(tmp_path / "out"), "--model", str(ckpt), "--no-progress"]) == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.png", "b.png"]
    assert "1 image(s) written as .png" in capsys.readouterr().err
    Image.fromarray(np.zeros((40, 40), np.uint8)).save(folder / "b.gif")  # b.gif and b.png: one name
    assert restore_main([str(folder), "-o", str(tmp_path / "out2"), "--model", str(ckpt)]) == 2
    assert "would both be written as" in _errors(capsys) and _nothing(tmp_path, "out2")


# -- 2. tiles too small for the network ------------------------------------------------------------

def test_minimum_tiling_follows_the_downsampling():
    tiny = make_genotype().build()
    assert min_tiling(tiny) == (32, 8)  # 2 cells: x4
    geno = make_genotype()
    geno.space = SpaceConfig(channels=(4, 8, 16, 32), columns=(1, 1, 1), stem="paper")
    geno.choices = {label: "fusion" for label in geno.space.labels}
    assert min_tiling(geno.build()) == (64, 16)  # 3 cells: x8 (the paper's space and the defaults 256 / 32)


@pytest.mark.parametrize("tile, overlap, message", [
    (16, 8, "--tile >= 32"),
    (24, 12, "--tile >= 32"),
    (64, 4, "--overlap >= 8"),
    (64, 0, "--overlap >= 8"),
])
def test_a_tile_or_overlap_below_the_minimum_is_refused(tmp_path, capsys, ckpt, tile, overlap, message):
    src = _png(tmp_path / "in.png", 80, 80)
    args = [str(src), "-o", str(tmp_path / "o.png"), "--model", str(ckpt), "--tile", str(tile), "--overlap", str(overlap)]
    assert restore_main(args) == 2
    line = _errors(capsys)
    assert message in line and "downsamples by 4" in line, line
    assert not (tmp_path / "o.png").exists()
    assert restore_main([*args[:5], "--tile", "0"]) == 0  # whole images need no minimum


# -- 3. EXIF orientation ---------------------------------------------------------------------------

@pytest.mark.parametrize("orientation, view", [
    (3, lambda a: np.rot90(a, 2)),
    (6, lambda a: np.rot90(a, -1)),  # rotate 90° clockwise to show
    (8, lambda a: np.rot90(a, 1)),
    (2, lambda a: a[:, ::-1]),
])
def test_images_are_read_as_viewers_show_them(tmp_path, orientation, view):
    a = np.random.default_rng(0).integers(0, 256, (20, 30), dtype=np.uint8)
    im = Image.fromarray(a)
    exif = im.getexif()
    exif[0x0112] = orientation
    im.save(tmp_path / "o.png", exif=exif.tobytes())
    np.testing.assert_array_equal(read_image(tmp_path / "o.png", 1)[..., 0], view(a) / np.float32(255))
    im.convert("RGB").save(tmp_path / "o.jpg", exif=exif.tobytes())
    assert read_image(tmp_path / "o.jpg", 3).shape[:2] == view(a).shape


def test_restore_writes_the_image_as_it_was_shown(tmp_path, ckpt):
    im = Image.fromarray(np.random.default_rng(0).integers(0, 256, (20, 36), dtype=np.uint8))
    exif = im.getexif()
    exif[0x0112] = 6
    im.save(tmp_path / "cam.jpg", exif=exif.tobytes())
    assert restore_main([str(tmp_path / "cam.jpg"), "-o", str(tmp_path / "r.png"), "--model", str(ckpt)]) == 0
    with Image.open(tmp_path / "r.png") as out:
        assert out.size == (20, 36)  # portrait, as shown; no orientation tag left to rotate it again
        assert out.getexif().get(0x0112) is None


# -- 4. declared sizes that would exhaust memory ---------------------------------------------------

def _claiming_png(path, width, height):
    """A real 8x8 PNG whose header claims width x height (a few hundred bytes)."""
    _png(path, 8, 8)
    data = bytearray(path.read_bytes())
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    path.write_bytes(bytes(data))
    return path


def test_a_huge_declared_size_is_refused_before_decoding(tmp_path, capsys, ckpt, monkeypatch):
    bomb = _claiming_png(tmp_path / "bomb.png", 100_000, 100_000)
    assert bomb.stat().st_size < 500
    with pytest.raises(DataError, match=r"100000x100000 pixels \(10000.0 megapixels, 120.0 GB.*--max-pixels"):
        read_image(bomb, 1)
    # the same through restore, a training folder (retrain) and an evaluation folder
    assert restore_main([str(bomb), "-o", str(tmp_path / "o.png"), "--model", str(ckpt)]) == 2
    assert "bomb.png: the image declares 100000x100000" in _errors(capsys)
    folder = tmp_path / "imgs"
    for i in range(2):
        _png(folder / f"ok{i}.png", seed=i)
    _claiming_png(folder / "z.png", 20_000, 10_000)  # 200 Mpx: above Pillow's own guard's warning
    make_genotype(tmp_path / "g.json")
    assert retrain_main(["--genotype", str(tmp_path / "g.json"), "--data", str(folder), "--val-data", "skimage",
                         "--out", str(tmp_path / "out"), *FAST]) == 2
    assert "z.png: the image declares 20000x10000" in _errors(capsys) and _nothing(tmp_path, "out")
    assert evaluate_main(["--model", str(ckpt), "--data", str(folder), "--out", str(tmp_path / "e"), "--no-progress"]) == 2
    assert "z.png" in _errors(capsys) and _nothing(tmp_path, "e")


def test_the_limit_can_be_moved_by_flag_or_environment(tmp_path, capsys, ckpt, monkeypatch):
    src = _png(tmp_path / "in.png", 100, 120)
    try:
        set_max_pixels(5000)
        with pytest.raises(DataError, match="120x100 pixels"):
            load_image(src)
        set_max_pixels(0)  # no limit
        assert load_image(src)[0].shape == (100, 120, 1)
    finally:
        set_max_pixels(None)
    monkeypatch.setenv("CLEARER_MAX_PIXELS", "11999")
    with pytest.raises(DataError, match="limit of 0.011999 megapixels"):
        read_image(src, 1)
    monkeypatch.delenv("CLEARER_MAX_PIXELS")
    args = [str(src), "-o", str(tmp_path / "o.png"), "--model", str(ckpt)]
    try:
        assert restore_main([*args, "--max-pixels", "1000"]) == 2
        assert "in.png: the image declares 120x100" in _errors(capsys)
        assert restore_main([*args, "--max-pixels", "12000"]) == 0  # large real images still restore, tiled
    finally:
        set_max_pixels(None)


# -- 5. folder restores: all or nothing, and continuable -------------------------------------------

def _three(folder):
    for i, name in enumerate(["a.png", "b.png", "c.png"]):
        _png(folder / name, seed=i)
    return folder


def test_an_unreadable_file_in_a_folder_fails_before_anything_is_written(tmp_path, capsys, ckpt):
    folder = _three(tmp_path / "in")
    (folder / "b.png").write_text("not a PNG")
    assert restore_main([str(folder), "-o", str(tmp_path / "out"), "--model", str(ckpt), "--no-progress"]) == 2
    assert "b.png: unreadable" in _errors(capsys) and _nothing(tmp_path, "out")


def test_a_folder_restore_that_stops_keeps_its_work_and_resume_finishes_it(tmp_path, capsys, ckpt):
    folder = _three(tmp_path / "in")
    good = (folder / "b.png").read_bytes()
    (folder / "b.png").write_bytes(good[: len(good) // 2])  # its header reads, its pixels do not
    args = [str(folder), "-o", str(tmp_path / "out"), "--model", str(ckpt), "--no-progress"]
    assert restore_main(args) == 2
    err = capsys.readouterr().err
    assert "restore stopped after 1 of 3 images" in err and "--resume" in err and "b.png" in err
    assert not (tmp_path / "out").exists()
    assert [p.name for p in (tmp_path / ".out.partial").iterdir()] == ["a.png"]
    (folder / "b.png").write_bytes(good)
    assert restore_main([*args, "--resume"]) == 0
    assert "restored 2 image(s) into" in capsys.readouterr().out
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.png", "b.png", "c.png"]
    assert not (tmp_path / ".out.partial").exists() and not (tmp_path / ".out.lock").exists()
    # a rerun with --resume skips everything complete (a new input is restored into the folder)
    _png(folder / "d.png", seed=9)
    assert restore_main([*args, "--resume"]) == 0
    assert "restored 1 image(s) into" in capsys.readouterr().out
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.png", "b.png", "c.png", "d.png"]


def test_ctrl_c_in_a_folder_restore_keeps_the_finished_images(tmp_path, capsys, ckpt, monkeypatch):
    import clearer_nni.restore as restore

    folder = _three(tmp_path / "in")
    real, calls = restore.restore_file, []

    def interrupted_at_the_second(*args, **kwargs):  # the user's Ctrl-C, at a known point
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(restore, "restore_file", interrupted_at_the_second)
    args = [str(folder), "-o", str(tmp_path / "out"), "--model", str(ckpt), "--no-progress"]
    assert restore_main(args) == 130
    assert "restore stopped after 1 of 3 images" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
    monkeypatch.setattr(restore, "restore_file", real)
    assert restore_main([*args, "--resume"]) == 0
    assert "restored 2 image(s) into" in capsys.readouterr().out
    assert len(list((tmp_path / "out").iterdir())) == 3


# -- 6. one output, two processes ------------------------------------------------------------------

_HOLDER = ("import sys, time; from clearer_nni import outlock; outlock.acquire(sys.argv[1]); print('locked', flush=True); "
           "time.sleep(120)")


@contextlib.contextmanager
def _held_by_another_process(out):
    proc = subprocess.Popen([sys.executable, "-c", _HOLDER, str(out)], stdout=subprocess.PIPE, text=True, cwd=REPO)
    try:
        assert proc.stdout.readline().strip() == "locked"
        yield proc
    finally:
        proc.kill()
        proc.wait()


def _command(name, tmp_path, ckpt):
    out = tmp_path / "out"
    folder = tmp_path / "imgs"
    _png(folder / "a.png")
    make_genotype(tmp_path / "g.json")
    return {"search": lambda: search_main(["--space", TINY_SPACE, "--steps", "12", "--no-progress", "--out", str(out)]),
            "retrain": lambda: retrain_main(["--genotype", str(tmp_path / "g.json"), "--out", str(out), *FAST]),
            "evaluate": lambda: evaluate_main(["--model", str(ckpt), "--data", str(folder), "--out", str(out),
                                               "--no-progress"]),
            "restore": lambda: restore_main([str(folder), "-o", str(out), "--model", str(ckpt), "--no-progress"]),
            }[name]


@pytest.mark.parametrize("name", ["search", "retrain", "evaluate", "restore"])
def test_a_second_process_on_the_same_out_is_refused_and_a_dead_ones_lock_is_taken_over(tmp_path, capsys, ckpt,
                                                                                        name):
    run = _command(name, tmp_path, ckpt)
    with _held_by_another_process(tmp_path / "out") as other:
        assert run() == 2
        line = _errors(capsys)
        assert f"is being written by another process (pid {other.pid}" in line, line
        assert not (tmp_path / "out").exists() and not (tmp_path / ".out.partial").exists()
    assert (tmp_path / ".out.lock").exists()  # left by the killed process: stale
    assert run() == 0
    assert (tmp_path / "out").is_dir() and not (tmp_path / ".out.lock").exists()


def test_the_lock_is_reentrant_in_a_process_and_released(tmp_path):
    out = tmp_path / "o"
    assert outlock.acquire(out) == outlock.acquire(out) == tmp_path / ".o.lock"
    assert outlock.held(out) and (tmp_path / ".o.lock").read_text().strip() == str(os.getpid())
    outlock.release(out)
    assert not outlock.held(out) and not (tmp_path / ".o.lock").exists()
    outlock.release(out)  # twice: nothing to do


# -- 7. a full disk --------------------------------------------------------------------------------

@pytest.fixture
def full_disk(tmp_path):
    """A 1 MiB tmpfs with 8 KiB left (root only; skipped where mounting is not permitted)."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)], capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs to fill ({proc.stderr.strip() or 'mount failed'})")
    try:
        (mnt / "spare").write_bytes(b"\0" * 8192)
        with open(mnt / "filler", "wb", buffering=0) as f, contextlib.suppress(OSError):
            while True:
                f.write(b"\0" * 4096)
        (mnt / "spare").unlink()
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_writes_on_a_full_disk_say_so_and_name_the_folder(full_disk):
    with pytest.raises(DiskFullError, match=f"no space left on device in {full_disk}"):
        atomic_save({"w": torch.zeros(50_000)}, full_disk / "x.pt")  # torch's own message has no errno
    with pytest.raises(DiskFullError, match=f"no space left on device in {full_disk}"):
        write_image(full_disk / "x.png", np.random.default_rng(0).random((128, 128)))
    assert sorted(p.name for p in full_disk.iterdir()) == ["filler"]  # no temporary file left


@pytest.mark.parametrize("command", ["search", "retrain", "restore"])
def test_commands_on_a_full_disk_give_one_clear_line(tmp_path, capsys, ckpt, full_disk, command):
    out = full_disk / "out"
    make_genotype(tmp_path / "g.json")
    if command == "search":
        code = search_main(["--space", TINY_SPACE, "--steps", "12", "--no-progress", "--out", str(out)])
    elif command == "retrain":
        code = retrain_main(["--genotype", str(tmp_path / "g.json"), "--out", str(out), *FAST])
    else:
        folder = tmp_path / "in"
        for i in range(3):
            _png(folder / f"{i}.png", 128, 128, seed=i)  # 16 KiB each, incompressible
        code = restore_main([str(folder), "-o", str(out), "--model", str(ckpt), "--no-progress"])
    err = capsys.readouterr().err
    line = err.strip().splitlines()[-1]
    assert code == 2 and line.startswith("error: no space left on device in ") and str(full_disk) in line, err
    assert "inline_container" not in err and not out.exists()
    kept = full_disk / ".out.partial"
    if command == "restore" and kept.exists():  # the images finished before the disk filled, for --resume
        assert f"restore stopped after {len(list(kept.iterdir()))} of 3 images" in err


# -- 8. files that are not what they claim ---------------------------------------------------------

class _NotPlainData:
    """An object a checkpoint must not hold (unpickling it means importing and building a class)."""


@pytest.mark.parametrize("case, message", [
    ("genotype_as_model", "g.json: not a checkpoint file, it is a JSON file: a genotype is trained into a model"),
    ("image_as_model", "a.png: not a checkpoint file, it is a PNG image"),
    ("folder_as_model", "checkpoint path is a folder, not a file"),
    ("pickle_as_model", "refused unexecuted"),
])
def test_a_wrong_file_as_model_is_named_for_what_it_is(tmp_path, capsys, case, message):
    folder = tmp_path / "imgs"
    _png(folder / "a.png")
    model = {"genotype_as_model": make_genotype(tmp_path / "g.json") and tmp_path / "g.json",
             "image_as_model": folder / "a.png", "folder_as_model": folder,
             "pickle_as_model": tmp_path / "p.pt"}[case]
    if case == "pickle_as_model":
        torch.save({"format": "clearer-nni-checkpoint", "metadata": {"x": _NotPlainData()}}, model)
    for run in (lambda: evaluate_main(["--model", str(model), "--data", str(folder), "--out", str(tmp_path / "e")]),
                lambda: restore_main([str(folder / "a.png"), "-o", str(tmp_path / "o.png"), "--model", str(model)])):
        assert run() == 2
        line = _errors(capsys)
        assert message in line and "weights_only=False" not in line, line
    assert _nothing(tmp_path, "e") and not (tmp_path / "o.png").exists()


@pytest.mark.parametrize("case, message", [
    ("folder_as_genotype", "genotype path is a folder, not a file"),
    ("checkpoint_as_genotype", "m.ckpt: not a genotype JSON file, it is a torch file"),
    ("folder_as_space", "space file path is a folder, not a file"),
    ("checkpoint_as_space", "m.ckpt: not a space file (YAML), it is a torch file"),
    ("extra_channels", "channels lists 4 scales [4, 8, 16, 32] but columns [2, 2] make 2 cells, which use 3"),
    ("missing_channels", "2 cells need 3 scales"),
])
def test_a_wrong_genotype_or_space_file_is_named_for_what_it_is(tmp_path, capsys, ckpt, case, message):
    if case.endswith("genotype"):
        geno = tmp_path if case.startswith("folder") else ckpt
        code = retrain_main(["--genotype", str(geno), "--out", str(tmp_path / "out"), *FAST])
    else:
        space = {"folder_as_space": tmp_path, "checkpoint_as_space": ckpt}.get(case, tmp_path / "s.yaml")
        channels = "[4, 8, 16, 32]" if case == "extra_channels" else "[4, 8]"
        (tmp_path / "s.yaml").write_text(f"space:\n  channels: {channels}\n  columns: [2, 2]\n  stem: paper\n")
        code = search_main(["--space", str(space), "--no-progress", "--out", str(tmp_path / "out")])
    assert code == 2
    assert message in _errors(capsys)
    assert _nothing(tmp_path, "out")


# -- 9. false or noisy warnings --------------------------------------------------------------------

def test_gray_into_a_gray_model_says_nothing_and_gray_stored_as_rgb_counts_as_gray(tmp_path, capsys, ckpt):
    src = _png(tmp_path / "g.png")
    assert restore_main([str(src), "-o", str(tmp_path / "o.png"), "--model", str(ckpt)]) == 0
    assert capsys.readouterr().err == ""
    gray_rgb = tmp_path / "grgb.png"
    Image.open(src).convert("RGB").save(gray_rgb)
    for model in (ckpt, _rgb_ckpt(tmp_path)):
        assert restore_main([str(gray_rgb), "-o", str(tmp_path / "o.png"), "--model", str(model), "--overwrite"]) == 0
        assert capsys.readouterr().err == ""
    assert restore_main([str(src), "-o", str(tmp_path / "o.png"), "--model", str(_rgb_ckpt(tmp_path)),
                         "--overwrite"]) == 0
    assert capsys.readouterr().err.strip().splitlines() == [
        f"note: {src}: gray image(s) repeated to 3 channels for the 3-channel model, written as colour"]


def test_warnings_are_one_clean_line(tmp_path):
    ckpt = make_checkpoint(tmp_path / "m.ckpt")
    rgba = np.random.default_rng(0).integers(0, 256, (24, 24, 4), dtype=np.uint8)
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    proc = subprocess.run([sys.executable, "-m", "clearer_nni", "restore", str(tmp_path / "a.png"), "-o",
                           str(tmp_path / "o.png"), "--model", str(ckpt)], capture_output=True, text=True, cwd=REPO,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert [x.split(":")[0] for x in lines] == ["warning", "note"], lines
    assert "alpha channel dropped" in lines[0] and "warn(" not in proc.stderr and ".py:" not in proc.stderr


# -- 10. small-run defaults ------------------------------------------------------------------------

def test_a_short_retraining_still_draws_a_curve(tmp_path, capsys):
    make_genotype(tmp_path / "g.json")
    fast = [a for a in FAST if a not in ("--val-every", "2")]
    assert retrain_main(["--genotype", str(tmp_path / "g.json"), "--out", str(tmp_path / "r"), *fast,
                         "--steps", "20"]) == 0
    rows = (tmp_path / "r" / "metrics.csv").read_text().strip().splitlines()[1:]
    assert len(rows) == 10  # every 2 steps; an explicit --val-every is kept:
    assert retrain_main(["--genotype", str(tmp_path / "g.json"), "--out", str(tmp_path / "r2"), *fast,
                         "--steps", "20", "--val-every", "20"]) == 0
    assert len((tmp_path / "r2" / "metrics.csv").read_text().strip().splitlines()) == 2


@pytest.mark.parametrize("data", ["set12", "bsd68", "bsds500"])
def test_a_named_dataset_not_found_says_how_to_point_at_it(tmp_path, capsys, ckpt, data):
    code = evaluate_main(["--model", str(ckpt), "--data", data, "--data-root", str(tmp_path / "nowhere"),
                          "--out", str(tmp_path / "e")])
    line = _errors(capsys)
    assert code == 2 and "--data-root" in line and "CLEARER_DATA_ROOT" in line and str(tmp_path / "nowhere") in line


@pytest.mark.parametrize("n, held", [(2, 1), (4, 1), (5, 1), (12, 2)])
def test_a_folder_without_a_validation_split_is_split(n, held):
    rng = np.random.default_rng(0)
    images = [rng.random((4, 4, 1)).astype(np.float32) for _ in range(n)]
    data = ImageSet("folder:/x", images, [f"/x/{i:02d}.png" for i in range(n)], targets=[-x for x in images])
    train, val = holdout_split(data)
    assert len(val) == held and len(train) == n - held and not set(train.paths) & set(val.paths)
    assert all(np.array_equal(t, -x) for t, x in zip(val.targets, val.images))  # pairs stay aligned
    with pytest.raises(DataError, match="at least 2"):
        holdout_split(ImageSet("folder:/x", images[:1], ["/x/0.png"]))


def test_search_on_a_folder_splits_it_or_takes_val_data(tmp_path, capsys):
    folder = tmp_path / "imgs"
    for i in range(5):
        _png(folder / f"{i}.png", 48, 48, seed=i)
    args = ["--space", TINY_SPACE, "--data", str(folder), "--steps", "12", "--no-progress"]
    assert search_main([*args, "--out", str(tmp_path / "s")]) == 0
    assert "the weights train on 4 of its images, α on the other 1" in capsys.readouterr().err
    assert search_main([*args, "--val-data", "skimage", "--out", str(tmp_path / "s2")]) == 0
    meta = json.loads((tmp_path / "s2" / "genotype.json").read_text())["metadata"]
    assert meta["val_data"] == "skimage/val" and meta["train_data"].startswith("folder:")


def test_search_help_shows_the_default_spaces_settings(capsys):
    assert search_main(["--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "[bsds500]" in text and "[skimage]" not in text and "default space 'denoise' with its recipe 'paper'" in text
