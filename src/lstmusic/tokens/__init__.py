"""Notes <-> token ids: the tokenizers (`base`, `tokenizer` for REMI/TSD/MIDI-Like through
miditok, `classic` for the original project's vocabulary), what each id means
(`vocab`) and which token may follow which (`grammar`).
"""
