"""How the course's plotly figures are shown, so that they are drawn wherever a notebook is read.

In a Jupyter kernel plotly stores a figure as ``application/vnd.plotly.v1+json`` only: JupyterLab
(with plotly's extension) and VS Code draw it, but nbconvert's HTML export and most notebook viewers
draw nothing. `use_course_renderer` (called by every notebook's set-up cell) makes each figure's
output carry both the json and ``text/html`` that draws it with plotly.js. plotly.js itself (~4.8 MB)
is embedded once per notebook, in the output of the first figure shown after the set-up cell, so a
saved notebook or its HTML export draws every figure with no network. In Colab, which draws each
output in a frame of its own, figures go through plotly's ``colab`` renderer (plotly.js from plotly's
CDN, which Colab, being online, can reach).
"""

from __future__ import annotations

from typing import Any

RENDERER = "course_html"
DEFAULT = f"plotly_mimetype+{RENDERER}"
COLAB = "colab"


def _renderer_class() -> type:
    from plotly.io.base_renderers import HtmlRenderer

    class EmbeddedOnceRenderer(HtmlRenderer):
        """``text/html`` per figure without plotly.js; `activate` embeds plotly.js once (no CDN, no MathJax)."""

        def __init__(self) -> None:
            super().__init__(connected=False, global_init=True, include_plotlyjs=False)

        def to_mimebundle(self, fig_dict: dict[str, Any]) -> dict[str, str]:
            from plotly.io import to_html

            html = to_html(
                fig_dict,
                config=self.config,
                include_plotlyjs=False,
                include_mathjax=False,
                full_html=False,
                default_width="100%",
                default_height=525,
                validate=False,
            )
            return {"text/html": html}

    return EmbeddedOnceRenderer


def in_kernel() -> bool:
    """True inside a Jupyter kernel (a notebook being run), False in a plain Python process."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and hasattr(shell, "kernel")


def use_course_renderer(colab: bool = False) -> str | None:
    """Choose how figures are shown in this notebook's kernel (nothing changes outside a kernel).

    Args:
        colab: the notebook runs in Colab.

    Returns:
        The renderer now plotly's default, or None when not in a kernel.
    """
    if not (colab or in_kernel()):
        return None
    import plotly.io as pio

    if colab:
        pio.renderers.default = COLAB
        return COLAB
    if RENDERER not in pio.renderers:
        pio.renderers[RENDERER] = _renderer_class()()
    # Setting the default (again) makes plotly embed plotly.js at the next figure shown.
    pio.renderers.default = DEFAULT
    return DEFAULT
