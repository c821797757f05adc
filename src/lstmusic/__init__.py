"""lstmusic: learn the style of a folder of MIDI files with an LSTM and compose new pieces.

The package is organised by stage of the data flow, each stage talking to the next through
files on disk: ``sources`` (which files) -> ``midi_io`` (read one file into a normalised note
stream) -> ``tokenizer`` (notes <-> token ids) -> ``dataset`` (a folder of token arrays and a
manifest) -> later stages (train, generate, evaluate). ``cli`` sits on top.
"""

__version__ = "0.1.0"
