"""lstm-xp: an LSTM written gate by gate, with backpropagation through time by hand,
on NumPy (CPU) or CuPy (GPU) chosen at run time.

    from lstm_xp import LSTM, Linear, MSELoss, Adam
    lstm = LSTM(input_size=8, hidden_size=32, device="cpu")   # or "gpu" / "auto"
"""

from backends import BackendUnavailableError, get_backend

from .arrays import finite_checks, to_numpy
from .layers import Linear
from .losses import CrossEntropyLoss, MSELoss
from .lstm import LSTM
from .optim import SGD, Adam, clip_grad_norm

__all__ = ["LSTM", "Linear", "MSELoss", "CrossEntropyLoss", "SGD", "Adam", "clip_grad_norm",
           "BackendUnavailableError", "get_backend", "to_numpy", "finite_checks"]
__version__ = "0.1.0"
