"""Backtests: alert rules run over a recording (:mod:`marketd.recorder`) with the live
decoding and the real detector, and a report of what they would have raised.

:mod:`.ticks` turns recorded frames into detector ticks, :mod:`.run` drives the detector
over a recording (with :mod:`.paths` keeping the price paths to chart), :mod:`.report`
sums up the alerts and their outcomes (and writes JSON and CSV), :mod:`.text` and
:mod:`.page` show it in a terminal and as an HTML page, :mod:`.inputs` reads the rules
file and the options' values, and :mod:`.cli` is ``marketd backtest``.
"""
