"""The network and what is saved of it: the LSTM and its fast inference step (`network`),
safetensors weights that never run code on load (`checkpoint`) and the run folder that
alone is enough to generate (`run`).
"""
