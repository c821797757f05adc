"""lstmusic: learn the style of a folder of MIDI files with an LSTM and compose new pieces.

The package is organised by stage of the data flow, each stage talking to the next through
folders on disk: ``sources`` (which files) -> ``midi_io`` (read one file into a normalised note
stream) -> ``tokenizer`` (notes <-> token ids; ``vocab`` says what each id means) ->
``dataset`` (a folder of token arrays and a manifest) -> ``train`` (a run folder, ``run``) ->
``compose`` (new pieces) -> ``writeout`` / ``evaluate`` / ``serve``. ``cli`` sits on top.
docs/ARCHITECTURE.md says which module owns what.
"""

__version__ = "0.1.0"
