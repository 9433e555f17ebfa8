"""lstm-xp: an LSTM written gate by gate, with backpropagation through time by hand,
on NumPy (CPU) or CuPy (GPU) chosen at run time.

    from lstm_xp import LSTM
    lstm = LSTM(input_size=8, hidden_size=32, device="cpu")
"""

from backends import BackendUnavailableError, get_backend

from .arrays import to_numpy
from .lstm import LSTM

__all__ = ["LSTM", "BackendUnavailableError", "get_backend", "to_numpy"]
__version__ = "0.1.0"
