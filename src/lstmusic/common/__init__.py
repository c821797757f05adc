"""Plumbing every stage shares: the frozen config dataclasses and their option tables
(`config`, `options`), the user's-mistake errors (`errors`), whole-or-nothing writes
(`atomic`) and size caps checked before any work (`bounded`). Imports no other wing.
"""
