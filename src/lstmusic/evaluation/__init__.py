"""Judging a run on music it never saw: held-out likelihood, MusPy statistics and
originality (`metrics`, `evaluate`) and the HTML page that shows them (`page`).
"""
