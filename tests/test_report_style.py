"""How the report looks: vector plots beside the PNGs at a chosen DPI, one method order in the
terminal, the tables and the plots, readable bands with many methods, docstring markup rendered."""

from __future__ import annotations

import io

from PIL import Image
from rich.console import Console

from retain.cli.console import results_table
from retain.report import descriptions, write_report
from retain.report.data import group_runs
from retain.report.document import Table
from retain.report.html import table as html_table
from retain.report.style import PAGE_WIDTH
from retain.store import Store
from test_report import fake_run, naive_R

ORDER = ["ewc", "joint", "naive", "er"]  # as the runs finished: not the order anything is shown in


def _store(tmp_path, strategies=ORDER) -> Store:
    s = Store(tmp_path / "r.db")
    for seed in range(3):
        for name in strategies:
            s.save_run(fake_run(name, seed, naive_R(seed), wall=1.0 + len(name)))
    return s


def test_one_method_order_in_the_terminal_and_the_report(tmp_path):
    store = _store(tmp_path)
    (groups,) = group_runs(store.runs()).values()
    assert [g.label for g in groups] == ["naive", "er", "ewc", "joint"]  # naive first, the upper bound last
    buf = io.StringIO()
    Console(file=buf, width=100).print(results_table(store.runs()))
    rows = [line.split()[0] for line in buf.getvalue().splitlines() if line.split()[:1] and
            line.split()[0] in ORDER]
    assert rows == ["naive", "er", "ewc", "joint"]


def test_docstring_markup_is_rendered_not_shown_raw():
    text = descriptions.summary("derpp")
    assert "``" not in text and "`beta > 0`" in text
    html = html_table(Table(["what it does"], [[text]]))
    assert "<code>beta &gt; 0</code>" in html and "`" not in html


def test_plots_come_as_pdf_and_svg_beside_the_png_at_the_dpi_asked_for(tmp_path):
    store = _store(tmp_path, ["naive", "er"])
    out = tmp_path / "report"
    write_report(store, out, formats=("markdown",), plot_formats=("pdf", "svg"), dpi=60)
    pngs = sorted((out / "plots").glob("*.png"))
    assert pngs and all(p.with_suffix(".pdf").is_file() and p.with_suffix(".svg").is_file() for p in pngs)
    assert (out / "plots" / "synthetic-average-accuracy.pdf").read_bytes().startswith(b"%PDF")
    assert Image.open(pngs[0]).size[0] == round(PAGE_WIDTH * 60)
    write_report(store, out, formats=("markdown",))  # PNG only now: the older vector files would be stale
    assert not list((out / "plots").glob("*.pdf")) and not list((out / "plots").glob("*.svg"))


def test_average_accuracy_with_nine_methods_has_a_panel_each(tmp_path, monkeypatch):
    from retain.report import plots

    names = ["naive", "er", "der", "derpp", "agem", "ewc", "si", "lwf", "joint"]
    runs = [fake_run(n, s, naive_R(s), wall=1.0) for n in names for s in range(3)]
    (groups,) = group_runs(runs).values()
    seen = {}
    save = plots.save
    monkeypatch.setattr(plots, "save", lambda fig, path: (seen.setdefault("fig", fig), save(fig, path))[1])
    plots.average_accuracy(groups, tmp_path / "a.png", {g.label: ("#000000", "o") for g in groups})
    panels = [ax for ax in seen["fig"].axes if ax.axison]
    assert len(panels) == 9 and {ax.get_title() for ax in panels} == set(names)
    assert all(len(ax.collections) <= 1 for ax in panels)  # at most one band per panel


def test_the_memory_figure_shows_what_the_method_holds_beside_process_memory(tmp_path, capsys):
    from retain.cli.main import main
    from retain.report.data import METHOD_STATE, attach_method_state

    out = tmp_path / "o"
    argv = ["run", "--benchmark", "synthetic", "--strategy", "naive", "--strategy", "er", "--buffer-size", "64",
            "--seeds", "2", "--quiet", "--out", str(out)]  # er's two seeds train as one ensemble
    assert main(argv) == 0
    store = Store(out / "retain.db", readonly=True)
    runs = store.runs()
    attach_method_state(store, runs)
    held = {(r.strategy, r.seed): r.extra[METHOD_STATE] for r in runs}
    assert held[("naive", 0)] == held[("naive", 1)] == 0.0
    buffer_mb = 64 * 16 * 4 / 2**20  # 64 samples of 16 float features, at least
    assert all(held[("er", s)] >= buffer_mb for s in (0, 1)), held
    assert (out / "plots" / "synthetic-memory.png").is_file()
    assert "Memory the method holds itself" in (out / "report.md").read_text()


def test_report_refuses_a_dpi_out_of_range_in_one_line(tmp_path, capsys):
    from retain.cli.main import main

    _store(tmp_path, ["naive"])
    assert main(["report", str(tmp_path / "r.db"), "--out", str(tmp_path / "o"), "--dpi", "5"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "--dpi must be between 30 and 1200, got 5" in err
    assert not (tmp_path / "o").exists()  # nothing written, not even the folder


def test_an_ensemble_member_holds_what_its_run_alone_holds(tmp_path, capsys):
    from retain.cli.main import main
    from retain.report.data import METHOD_STATE, attach_method_state

    held = {}
    for how in ("batched", "--no-batch-seeds"):
        out = tmp_path / how.strip("-")
        argv = ["run", "--benchmark", "synthetic", "--strategy", "ewc", "--seeds", "2", "--quiet", "--no-report",
                "--out", str(out)] + ([how] if how.startswith("--") else [])
        assert main(argv) == 0
        store = Store(out / "retain.db", readonly=True)
        runs = store.runs()
        attach_method_state(store, runs)
        assert {bool((r.extra or {}).get("batched")) for r in runs} == {how == "batched"}
        held[how] = sorted(r.extra[METHOD_STATE] for r in runs)
    assert held["batched"] == held["--no-batch-seeds"] and held["batched"][0] > 0  # its slice, not the stack
