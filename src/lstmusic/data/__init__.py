"""A corpus made ready to train on: the prepared dataset folder and its typed manifest
(`dataset`, `manifest`), training windows (`windows`), merging datasets (`merge`), the
lock that keeps two processes off one folder (`locks`) and the dataset summary printed
after `prepare` (`summary`).
"""
