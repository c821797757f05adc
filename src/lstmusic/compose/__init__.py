"""Composing new pieces from a run: sampling (`sampler`), the guard against collapse
(`guard`), steering by key, chords and melody (`steer`), primes (`primes`), redoing bars
(`redo`) and the loop that ties them into typed results (`composer`).

`from lstmusic.compose import Composer, Composition` is the public way in.
"""

__all__ = ["Composer", "Composition"]


def __getattr__(name: str):
    # Lazy, so that importing one of this wing's light modules (primes, steer) does not
    # pull in torch through the composer.
    if name in __all__:
        from lstmusic.compose import composer

        return getattr(composer, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
