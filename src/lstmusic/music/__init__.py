"""Music files in: which files a corpus names (`sources`), one file read into a normalised
note stream (`midi_io`), and what a piece is made of — its notes, its bars, whether it
has collapsed (`measure`).
"""
