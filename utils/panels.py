"""Live controls in a notebook: an ipywidgets panel where a front end can draw one, a printed table otherwise.

A section's panel module (``part2_capping/panel.py``, ``part4_steering/panel.py``) has a pure view
function, control values in and text out, which the tests call directly. `show_panel` wraps it: in a
live Jupyter kernel with ipywidgets it shows one widget per control and redraws the text at every
change; without a widget front end (no kernel, ipywidgets missing, or ``COURSE_NO_WIDGETS`` set, as the
course runner sets it for the notebooks it stores) it prints the view at the controls' initial values,
so a stored notebook and its HTML report hold the table a student would first see.

`show_panel` displays the panel itself and returns a `Panel` handle that displays nothing, so a cell
that ends with the call (as the sections' cells do) shows the panel once, in every front end (a cell's
last value is displayed by the kernel, so returning the widget box would show it a second time).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from utils import environment
from utils.figures import in_kernel


@dataclass
class Control:
    """One control of a panel: a slider over ``options`` (``kind="slider"``) or a picker (``kind="picker"``).

    Args:
        name: the keyword the view function takes this control's value as.
        label: what the student sees next to it.
        options: the values it can take (numbers for a slider, any for a picker).
        value: the initial value (default: the first option).
        kind: "slider" or "picker".
        labels: optional text shown for each option (a picker of long questions shows them shortened).
    """

    name: str
    label: str
    options: Sequence[Any]
    value: Any = None
    kind: str = "slider"
    labels: Sequence[str] | None = field(default=None)

    def __post_init__(self) -> None:
        if self.kind not in ("slider", "picker"):
            raise ValueError(f"kind must be 'slider' or 'picker', got {self.kind!r}")
        if not self.options:
            raise ValueError(f"control {self.name!r} has no options")
        if self.value is None:
            self.value = self.options[0]
        if self.value not in self.options:
            raise ValueError(f"control {self.name!r}: initial value {self.value!r} is not one of its options")
        if self.labels is not None and len(self.labels) != len(self.options):
            raise ValueError(f"control {self.name!r}: {len(self.labels)} labels for {len(self.options)} options")


def widgets_available() -> tuple[bool, str]:
    """Whether `show_panel` can show widgets here, and if not, why not."""
    if environment.setting(environment.NO_WIDGETS):
        return False, f"{environment.NO_WIDGETS} is set"
    if not in_kernel():
        return False, "not running in a Jupyter kernel"
    try:
        import ipywidgets  # noqa: F401
    except ImportError:
        return False, "ipywidgets is not installed"
    return True, ""


def initial_values(controls: Sequence[Control]) -> dict[str, Any]:
    """The controls' initial values, by name."""
    return {c.name: c.value for c in controls}


@dataclass
class Panel:
    """What `show_panel` returns once it has shown a live panel: its widget box and its inputs by name.

    Displaying it shows nothing (the panel is already on screen); ``display(panel.box)`` shows another view
    of the same panel.
    """

    box: Any
    inputs: dict[str, Any]

    def _ipython_display_(self) -> None:
        """Nothing: the panel was displayed when it was made, and a cell ending with it must not show it twice."""

    def __repr__(self) -> str:
        return f"Panel(controls={list(self.inputs)})"


def show_panel(controls: Sequence[Control], view: Callable[..., str], title: str = "") -> Panel | None:
    """Show a live panel, or print the view at the controls' initial values where widgets cannot render.

    Args:
        controls: the panel's controls (their names are ``view``'s keywords).
        view: control values in, the text to show out (pure: the tests call it directly).
        title: a line shown above the panel.

    Returns:
        A `Panel` (the box shown and its inputs; displaying it shows nothing more), or None when the
        table was printed instead.
    """
    ok, reason = widgets_available()
    if not ok:
        values = initial_values(controls)
        at = ", ".join(f"{k} = {v!r}" for k, v in values.items())
        if title:
            print(title)
        print(f"(widgets off: {reason}; the panel at {at})\n")
        print(view(**values))
        return None
    import ipywidgets as w
    from IPython.display import display

    inputs: dict[str, Any] = {}
    for c in controls:
        options = list(zip(c.labels, c.options)) if c.labels is not None else list(c.options)
        style = {"description_width": "initial"}
        layout = w.Layout(width="90%")
        if c.kind == "slider":
            inputs[c.name] = w.SelectionSlider(
                options=options, value=c.value, description=c.label, continuous_update=False, style=style, layout=layout
            )
        else:
            inputs[c.name] = w.Dropdown(options=options, value=c.value, description=c.label, style=style, layout=layout)
    out = w.Output()

    def redraw(*_: Any) -> None:
        with out:
            out.clear_output(wait=True)
            try:
                print(view(**{name: widget.value for name, widget in inputs.items()}))
            except Exception as err:  # shown in the panel, not lost in the kernel's log
                print(f"{type(err).__name__}: {err}")

    for widget in inputs.values():
        widget.observe(redraw, names="value")
    box = w.VBox([*([w.HTML(f"<b>{title}</b>")] if title else []), *inputs.values(), out])
    display(box)
    redraw()
    return Panel(box, inputs)
