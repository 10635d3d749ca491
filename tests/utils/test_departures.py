"""A departure from the method is one line with one prefix, whoever writes it."""

from __future__ import annotations

import pytest

from utils.departures import PREFIX, departure


def test_a_departure_is_one_line_that_starts_with_the_prefix():
    line = departure("the offline role judge asks yes or no. ")
    assert line == f"{PREFIX} the offline role judge asks yes or no."


@pytest.mark.parametrize("text", ["", "   ", "DEPARTURE FROM THE METHOD: twice", "Departure from the method: twice"])
def test_an_empty_or_already_prefixed_text_is_refused(text):
    with pytest.raises(ValueError, match="without the prefix"):
        departure(text)
