"""`make demo`'s walk-through against a real server: it passes its own checks, and its sections are numbered in
the order they print, each number once."""

from __future__ import annotations

import re

import pytest

from clients.demo import Sections, run_demo

pytestmark = pytest.mark.e2e


def test_the_demos_sections_are_numbered_once_each_in_order(client, capsys):
    sections = Sections()
    assert run_demo(client, True, sections)
    printed = capsys.readouterr().out
    numbers = [int(n) for n in re.findall(r"^(\d+)\. [A-Z]", printed, flags=re.M)]
    assert numbers == list(range(1, len(sections.titles) + 1)) and len(numbers) == 6
    sections("T+1")  # the T+1 run that follows in `make demo` prints under the next number
    assert capsys.readouterr().out.splitlines()[2] == "7. T+1"
