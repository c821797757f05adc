"""lstmusic: learn the style of a folder of MIDI files with an LSTM and compose new pieces.

The package is laid out by stage of the data flow, one sub-package (a wing) per stage, each
importing only the wings before it: ``common`` (config, errors, atomic writes) -> ``music``
(files in) -> ``tokens`` (notes <-> ids) -> ``data`` (a prepared dataset) -> ``model`` (the
network, its checkpoint and run folder) -> ``training`` -> ``compose`` (new pieces) ->
``output`` (MIDI, WAV, PNG, sheet music) -> ``evaluation`` -> ``studio``; ``cli`` sits on top.
docs/ARCHITECTURE.md says which module owns what.

The public API: ``from lstmusic import Composer`` (``Composer.load(run_dir).generate(...)``
gives a ``Composition``).
"""

__version__ = "0.1.0"
__all__ = ["Composer", "Composition", "__version__"]


def __getattr__(name: str):
    # Lazy: `import lstmusic` (every command starts with it) must not import torch.
    if name in ("Composer", "Composition"):
        from lstmusic.compose import composer

        return getattr(composer, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
