"""The HTML report: every section, inline figures, atomic writes, and it renders in a browser."""

from __future__ import annotations

import base64
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from training import report
from training.evaluation import Evaluation, evaluate
from training.report import write_report

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync"]
IMG = re.compile(r'<img class="figure"[^>]*src="data:image/png;base64,([A-Za-z0-9+/=]+)"')


def _evaluation(*, oracle: bool = True, extras: bool = True) -> Evaluation:
    rng = np.random.default_rng(11)
    n = 2000
    truth = rng.beta(1.2, 4.0, n)
    y = rng.random(n) < truth
    scores = {"model": np.clip(truth + rng.normal(0, 0.05, n), 0, 1),
              "btyd": np.clip(truth + rng.normal(0, 0.2, n), 0, 1),
              "recency": np.round(300 * truth + rng.normal(0, 80, n)) + 400}
    if oracle:
        scores["oracle"] = truth
    segments = pd.DataFrame({"segment": rng.choice(["new", "repeat", "vip"], n, p=[.5, .49, .01]),
                             "has_browsing": rng.random(n) < 0.5,
                             "has_complaints": rng.random(n) < 0.2})
    contributions = pd.DataFrame(rng.normal(size=(300, 26)),
                                 columns=[*(f"feature_{i:02d}" for i in range(25)), "bias"])
    return evaluate(y, scores, oracle="oracle" if oracle else None,
                    segments=segments if extras else None,
                    contributions=contributions if extras else None,
                    groups={"active_90d": truth < 0.3, "active_30d": truth < 0.004}
                    if extras else None,
                    cutoff="2025-04-02", horizon_days=90, n_boot=50)


@pytest.fixture(scope="module")
def ev() -> Evaluation:
    return _evaluation()


@pytest.fixture(scope="module")
def written(ev, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("report") / "not" / "yet" / "there" / "report.html"
    details = {"model": "churn-lgbm", "version": "3", "best params": {"num_leaves": 31},
               "note": "<script>alert(1)</script>"}
    assert write_report(ev, path, title="Churn <model> evaluation", details=details) == path
    return path


def test_every_section_and_score_is_in_the_report(ev, written):
    html = written.read_text(encoding="utf-8")
    for section in ("header", "metrics", "versus", "active", "oracle", "plots", "segments"):
        assert f'id="{section}"' in html, section
    for score in ev.score_names:
        assert f"<td>{score}" in html, score
    assert '<tr class="model"><td>model' in html  # the model's row is highlighted
    assert ev.verdict() in html and "model beats btyd by " in html
    assert "oracle&#39;s margin" in html or "oracle's margin" in html
    assert "2025-04-02" in html and "90 days" in html and "2,000" in html
    assert "num_leaves" in html and "churn-lgbm" in html
    assert "vip" in html and "fewer than 50 customers" in html
    active = ev.groups["active_90d"]
    assert "ordered in the last 90 days" in html and active.best_baseline in html
    assert f'{active.versus_best_baseline["roc_auc"].value:+.3f}' in html
    assert "not scored: fewer than 50 customers" in html  # the 30-day group is too small


def test_user_text_is_escaped_and_nothing_is_fetched(written):
    html = written.read_text(encoding="utf-8")
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;alert(1)" in html
    assert "Churn &lt;model&gt; evaluation" in html
    assert not re.search(r'(src|href)="(https?:)?//', html)
    assert "<link" not in html


def test_figures_are_inline_pngs(written):
    images = IMG.findall(written.read_text(encoding="utf-8"))
    assert len(images) == 4  # calibration, gain, distribution, importance
    for data in images:
        assert base64.b64decode(data).startswith(b"\x89PNG\r\n\x1a\n")


def test_report_without_oracle_segments_or_contributions(tmp_path):
    ev = _evaluation(oracle=False, extras=False)
    html = write_report(ev, tmp_path / "r.html", title="t").read_text(encoding="utf-8")
    assert 'id="oracle"' not in html
    assert "No SHAP contributions were given." in html and "No segments were given." in html
    assert len(IMG.findall(html)) == 3


def test_failed_render_leaves_no_file_and_keeps_the_old_one(ev, tmp_path, monkeypatch):
    def broken(_ev):
        raise RuntimeError("plot failed")

    monkeypatch.setattr(report, "_gain_plot", broken)
    with pytest.raises(RuntimeError, match="plot failed"):
        write_report(ev, tmp_path / "new" / "report.html", title="t")
    assert not (tmp_path / "new" / "report.html").exists()

    old = tmp_path / "report.html"
    old.write_text("previous report")
    with pytest.raises(RuntimeError):
        write_report(ev, old, title="t")
    assert old.read_text() == "previous report"
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == ["report.html"]


def test_failed_write_removes_the_temporary_file(ev, tmp_path, monkeypatch):
    def broken_write(self, *args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(Path, "write_text", broken_write)
    with pytest.raises(OSError, match="disk full"):
        write_report(ev, tmp_path / "report.html", title="t")
    assert list(tmp_path.iterdir()) == []


def test_report_uses_no_pyplot_global_state(tmp_path):
    # A fresh interpreter: pyplot (and its figure registry and backend choice) stays unloaded.
    code = (
        "import sys\n"
        "import tests.training.test_report as t\n"
        "from training.report import write_report\n"
        f"write_report(t._evaluation(), {str(tmp_path / 'r.html')!r}, title='t')\n"
        "assert 'matplotlib.pyplot' not in sys.modules, 'pyplot was imported'\n"
    )
    root = Path(__file__).resolve().parents[2]
    subprocess.run([sys.executable, "-c", code], check=True, cwd=root, timeout=120)


def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None and Path("/usr/bin/chromium").exists():
        found = "/usr/bin/chromium"
    if found is None:
        pytest.skip("Chromium not installed (apt-get install chromium): "
                    "cannot render the report in a browser")
    return found


def _dump_dom(chromium: str, page: Path, profile: Path) -> str:
    result = subprocess.run(
        [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--dump-dom",
         page.resolve().as_uri()],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


@pytest.mark.slow
def test_plots_render_in_a_headless_browser(written, tmp_path):
    chromium = _chromium()
    dom = _dump_dom(chromium, written, tmp_path / "profile")
    assert 'data-figures-checked="yes"' in dom, "the page's load handler did not run"
    states = re.findall(r'<img class="figure"[^>]*?data-rendered="(yes|no)"', dom)
    assert states == ["yes"] * 4

    # The check can fail: a corrupt image is reported as not rendered.
    broken = tmp_path / "broken.html"
    html = written.read_text(encoding="utf-8")
    first = IMG.search(html).group(1)
    broken.write_text(html.replace(first, "bm90IGEgcG5n", 1), encoding="utf-8")
    dom = _dump_dom(chromium, broken, tmp_path / "profile2")
    states = re.findall(r'<img class="figure"[^>]*?data-rendered="(yes|no)"', dom)
    assert states == ["no", "yes", "yes", "yes"]
