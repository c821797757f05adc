"""Training a run: where it starts (the bundled base, fine-tuned by default), the loop,
validation by steps and by time, resumable state (`train`), and its curves and verdict
(`curves`).
"""
