"""pyro_air.support.atomic: the old content or the new, never half, and no temporary file left."""
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from pyro_air.support.atomic import atomic_save_figure, atomic_write_text  # noqa: E402


def test_text_is_replaced_whole(tmp_path):
    path = tmp_path / "khat.json"
    atomic_write_text(path, "old")
    atomic_write_text(path, "new")
    assert path.read_text() == "new" and [p.name for p in tmp_path.iterdir()] == ["khat.json"]


def test_a_failed_figure_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "khat.png"
    fig, ax = plt.subplots()
    ax.plot([0, 1], [0, 1])
    atomic_save_figure(fig, path, dpi=50)
    before = path.read_bytes()
    assert before.startswith(b"\x89PNG")
    with pytest.raises(ValueError):
        atomic_save_figure(fig, tmp_path / "khat.notaformat")
    assert path.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["khat.png"]
    plt.close(fig)
