"""Pieces written out: the files of one piece, named and whole (`writeout`), the piano-roll
PNG and the WAV (`render`, `synth`) and sheet music (`sheet`).
"""
