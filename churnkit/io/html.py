"""What churnkit's self-contained HTML reports share: the page head and style, inline PNG plots.

Used by the evaluation report (``training/report.py``) and the campaign report
(:mod:`churnkit.campaigns.report`), so both read alike and neither needs a network to display.
"""

from __future__ import annotations

import base64
import io

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

_BASE_CSS = """\
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:2em auto;max-width:1100px;
 color:#222;padding:0 1em}
h1{margin-bottom:.2em} h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.6em}
table{border-collapse:collapse;margin:.5em 0;font-size:.9em}
th,td{border:1px solid #ddd;padding:.25em .6em;text-align:left;vertical-align:top}
th{background:#f4f4f4} td.num{text-align:right;font-variant-numeric:tabular-nums}
.verdict{font-size:1.1em;padding:.6em .9em;background:#f0f6ff;border-left:4px solid #2d6cdf}
.muted{color:#777}
figure{display:inline-block;margin:.5em 1em .5em 0;vertical-align:top}
figure img{max-width:100%;border:1px solid #eee}
"""


def page_head(extra_css: str = "") -> str:
    """The Jinja source of a report page up to ``<body>`` (the title comes from ``title``)."""
    return ('<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">\n'
            '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            "<title>{{ title }}</title>\n<style>\n" + _BASE_CSS + extra_css
            + "</style></head>\n<body>\n")


def page_foot() -> str:
    """The end of a report page: a script that marks each ``img.figure`` once decoded
    (``data-rendered="yes"``), so a headless browser can tell that the plots rendered."""
    return """<script>
function markFigures() {
  for (const img of document.querySelectorAll("img.figure")) {
    img.dataset.rendered = img.complete && img.naturalWidth > 0 ? "yes" : "no";
  }
  document.body.dataset.figuresChecked = "yes";
}
window.addEventListener("load", markFigures);
</script>
</body></html>
"""


def png_base64(fig: Figure) -> str:
    """Base64 PNG of ``fig``; the figure is cleared afterwards to free its memory at once."""
    buffer = io.BytesIO()
    try:
        FigureCanvasAgg(fig).print_png(buffer)
    finally:
        fig.clear()
    return base64.b64encode(buffer.getvalue()).decode("ascii")
