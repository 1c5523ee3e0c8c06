"""The report's figures: what each draws (read off the matplotlib figure before it is saved), the
palette, the Pareto front, and that every PNG fits the HTML page at its natural size."""

from __future__ import annotations

import struct

import matplotlib.colors as mc
import numpy as np
import pytest

from retain.metrics.matrix import confidence_interval
from retain.report import plots, plots_summary, write_report
from retain.report.data import group_runs
from retain.report.style import DPI, PAGE_WIDTH, PALETTE, method_styles
from retain.store import Store
from test_report import fake_run


def _lab(colour: str) -> np.ndarray:
    """CIELAB (D65) of an sRGB colour: distances there follow how different colours look."""
    rgb = np.array(mc.to_rgb(colour))
    lin = np.where(rgb > 0.04045, ((rgb + 0.055) / 1.055) ** 2.4, rgb / 12.92)
    xyz = np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]]) @ lin
    f = np.cbrt(xyz / np.array([0.95047, 1.0, 1.08883]))  # all our colours are far above the linear toe
    return np.array([116 * f[1] - 16, 500 * (f[0] - f[1]), 200 * (f[1] - f[2])])


def test_twenty_methods_get_twenty_distinct_colours():
    styles = method_styles(f"m{i}" for i in range(20))
    colours = [c for c, _ in styles.values()]
    assert len(set(colours)) == 20 and colours[10] != colours[0]  # C{i} would repeat here
    labs = [_lab(c) for c in PALETTE]
    closest = min(np.linalg.norm(labs[i] - labs[j]) for i in range(20) for j in range(i))
    assert closest > 25  # no pair closer than the closest pair of matplotlib's own ten
    assert method_styles(["b", "a", "b"]) == {"b": (PALETTE[0], "o"), "a": (PALETTE[1], "s")}


def test_pareto_front_keeps_only_undominated_points():
    pts = [(1.0, 50.0), (2.0, 40.0), (2.0, 70.0), (4.0, 70.0), (8.0, 90.0), (0.5, 10.0)]
    # (2, 40) is beaten by (1, 50); (4, 70) by (2, 70) at the same accuracy and lower cost
    assert plots_summary.pareto_front(pts) == [5, 0, 2, 4]
    assert plots_summary.pareto_front([(1.0, 1.0)]) == [0]


def test_task_ticks_are_one_based():
    assert plots.task_ticks(5) == [1, 2, 3, 4, 5]
    assert plots.task_ticks(20) == [1, 5, 10, 15, 20]


@pytest.fixture
def figures(monkeypatch):
    """Each figure drawn, kept open instead of saved: suffix -> matplotlib Figure."""
    drawn = {}

    def keep(fig, path):
        drawn[path.stem.split("-", 1)[1]] = fig
        return path

    monkeypatch.setattr(plots, "save", keep)
    monkeypatch.setattr(plots_summary, "save", keep)
    yield drawn
    import matplotlib.pyplot as plt

    plt.close("all")


def _groups(runs):
    return group_runs(runs)["synthetic"]


def _draw(groups, tmp_path):
    styles = method_styles(g.label for g in groups)
    for suffix, _caption, draw in plots.FIGURES:
        draw(groups, tmp_path / f"synthetic-{suffix}.png", styles)
    return styles


def _three_tasks(seed: int, drop: float) -> list[list[float]]:
    return [[0.9, 0.1, 0.1], [0.9 - drop, 0.8, 0.1], [0.8 - drop - 0.05 * seed, 0.7, 0.9]]


def test_heatmap_masks_the_untrained_upper_triangle(figures, tmp_path):
    runs = [fake_run("naive", s, _three_tasks(s, 0.3), 1.0) for s in range(3)]
    _draw(_groups(runs), tmp_path)
    image = figures["heatmaps"].axes[0].images[0].get_array()
    assert image.mask.tolist() == [[False, True, True], [False, False, True], [False, False, False]]
    texts = [t.get_text() for t in figures["heatmaps"].axes[0].texts]
    assert len(texts) == 6  # numbers only in the trained part
    labels = [t.get_text() for t in figures["heatmaps"].axes[0].get_xticklabels()]
    assert labels == ["1", "2", "3"]


def test_bars_show_every_run_and_the_band_is_the_t_interval(figures, tmp_path):
    runs = [fake_run("naive", s, _three_tasks(s, 0.3), 1.0) for s in range(3)]
    runs += [fake_run("er", s, _three_tasks(s, 0.1), 2.0) for s in range(2)]  # n = 2: no interval
    groups = _groups(runs)
    styles = _draw(groups, tmp_path)
    acc_ax, fgt_ax = figures["accuracy-forgetting"].axes
    dots = [c for c in fgt_ax.collections if type(c).__name__ == "PathCollection"]
    assert [len(c.get_offsets()) for c in dots] == [3, 2]  # one dot a run, per method
    naive_f = sorted(float(x) for x in dots[0].get_offsets()[:, 0])
    assert naive_f == pytest.approx(sorted(100 * v for v in groups[0].values("forgetting")))
    assert len([c for c in acc_ax.collections if type(c).__name__ == "PathCollection"]) == 2
    whiskers = [c for c in fgt_ax.collections if type(c).__name__ == "LineCollection"]
    assert len(whiskers) == 1  # er (2 runs) has none
    lo, hi = whiskers[0].get_segments()[0][:, 0]
    mean, half = confidence_interval([100 * v for v in groups[0].values("forgetting")])
    assert (lo, hi) == pytest.approx((mean - half, mean + half))
    ax = figures["average-accuracy"].axes[0]
    bands = [c for c in ax.collections if type(c).__name__ in ("PolyCollection", "FillBetweenPolyCollection")]
    assert len(bands) == 1  # naive's; er has 2 runs
    curves = groups[0].curves() * 100
    top = bands[0].get_paths()[0].vertices[:, 1].max()
    assert top == pytest.approx(max(curves.mean(0) + [confidence_interval(c)[1] for c in curves.T]))
    colours = {ln.get_label(): mc.to_hex(ln.get_color()) for ln in ax.lines}
    assert colours == {g.label: styles[g.label][0] for g in groups}


def test_a_final_only_method_has_no_matrix_and_breaks_nothing(figures, tmp_path):
    runs = [fake_run("naive", s, _three_tasks(s, 0.3), 1.0) for s in range(3)]
    final_only = [[0.0] * 3, [0.0] * 3, [0.95, 0.9, 0.93]]
    runs += [fake_run("joint", s, final_only, 3.0, metrics={"avg_acc": 0.926}) for s in range(3)]
    groups = _groups(runs)
    _draw(groups, tmp_path)
    assert len([a for a in figures["heatmaps"].axes if a.images]) == 1  # naive only
    ax = figures["average-accuracy"].axes[0]
    joint = [ln for ln in ax.lines if ln.get_label() == "joint (final only)"]
    # The final accuracy is computed from the stored matrix, not read from the stored 0.926.
    assert joint and joint[0].get_ydata()[0] == pytest.approx(100 * (0.95 + 0.9 + 0.93) / 3)
    assert "not measured" in [t.get_text().strip() for t in figures["accuracy-forgetting"].axes[1].texts]
    cost = figures["accuracy-vs-cost"].axes[0]
    assert {t.get_text() for t in cost.texts} == {"naive", "joint"}  # labelled points
    assert cost.get_xscale() == "log" and figures["accuracy-vs-cost"].axes[1].get_xscale() == "log"


def _png_size(path) -> tuple[int, int]:
    return struct.unpack(">II", path.read_bytes()[16:24])


def test_every_png_fits_the_page_and_one_method_keeps_its_colour(tmp_path):
    s = Store(tmp_path / "many.db")
    for k in range(11):  # past matplotlib's ten colours
        s.save_run(fake_run(f"m{k:02d}", 0, _three_tasks(0, 0.02 * k), 1.0 + k, peak_mem=100.0 + 10 * k))
    out = tmp_path / "rep"
    write_report(s, out)
    for png in (out / "plots").glob("*.png"):
        width, _ = _png_size(png)
        assert width <= PAGE_WIDTH * DPI, png.name  # shown unscaled on the HTML page
    from matplotlib.image import imread

    for name in ("average-accuracy", "accuracy-vs-cost"):
        pixels = (imread(out / "plots" / f"synthetic-{name}.png")[..., :3] * 255).reshape(-1, 3)
        for colour in (PALETTE[0], PALETTE[10]):
            want = np.array(mc.to_rgb(colour)) * 255
            assert (np.abs(pixels - want).max(axis=1) < 6).sum() > 20, (name, colour)
