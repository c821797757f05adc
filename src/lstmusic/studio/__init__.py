"""The studio: a local web app to compose, listen to and redo pieces (`serve`, with its
page under `web/`).
"""
