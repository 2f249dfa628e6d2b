"""Frame sources: folders (with a corrupt file), videos with frame stepping, bad inputs."""

import cv2
import numpy as np
import pytest

from orpose.data.sources import SourceError, expand_inputs, iter_frames, iter_video


def _write_video(path, n=10):
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (64, 48))
    for i in range(n):
        writer.write(np.full((48, 64, 3), 20 * i, np.uint8))
    writer.release()


def test_video_stepping_yields_the_right_frames(tmp_path):
    video = tmp_path / "clip.avi"
    _write_video(video)
    frames = list(iter_video(video, step=3))
    assert [f.frame_index for f in frames] == [0, 3, 6, 9]
    for f in frames:  # each frame's grey level encodes its index
        assert abs(float(f.image.mean()) - 20 * f.frame_index) < 3
        assert f.key.endswith(f"#frame={f.frame_index:06d}")
    assert [f.frame_index for f in iter_video(video, step=4, start=1)] == [1, 5, 9]


def test_folder_with_a_corrupt_image_keeps_going(tmp_path):
    cv2.imwrite(str(tmp_path / "a.png"), np.zeros((8, 8, 3), np.uint8))
    (tmp_path / "b.jpg").write_bytes(b"not an image at all")
    cv2.imwrite(str(tmp_path / "c.png"), np.full((8, 8, 3), 255, np.uint8))
    frames = list(iter_frames(expand_inputs([tmp_path])))
    assert [f.key.rsplit("/", 1)[-1] for f in frames] == ["a.png", "b.jpg", "c.png"]
    assert frames[1].image is None and "b.jpg" in frames[1].error
    assert frames[2].image.shape == (8, 8, 3)


def test_bad_inputs_are_named(tmp_path):
    with pytest.raises(SourceError, match="nope: no such file or folder"):
        expand_inputs([tmp_path / "nope"])
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(SourceError, match=r"notes\.txt: not an image"):
        expand_inputs([tmp_path / "notes.txt"])
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(SourceError, match="folder holds no image"):
        expand_inputs([empty])


def test_real_video_of_the_shared_folder(shared):
    video = shared / "data" / "pets09_s2l1" / "vtest_480x360.avi"
    frames = list(iter_video(video, step=100))
    assert [f.frame_index for f in frames] == list(range(0, 795, 100))
    assert frames[0].image.shape == (360, 480, 3)
