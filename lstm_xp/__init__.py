"""lstm-xp: an LSTM written gate by gate, with backpropagation through time by hand,
on NumPy (CPU) or CuPy (GPU) chosen at run time.

    from lstm_xp import LSTM, Linear, MSELoss, Adam
    lstm = LSTM(input_size=8, hidden_size=32, device="cpu")   # or "gpu" / "auto"
"""


def _check_backends_is_ours() -> None:
    """lstm_xp's array backends are the top-level package ``backends`` installed beside it.
    Another package of that name earlier on sys.path (say a ``backends/`` folder in the
    working directory) would be imported instead and fail obscurely: say so plainly."""
    import importlib.util
    from pathlib import Path

    ours = Path(__file__).resolve().parent.parent / "backends"
    spec = importlib.util.find_spec("backends")
    found = [Path(p).resolve() for p in (spec.submodule_search_locations or [])] if spec else []
    if ours not in found:
        where = ", ".join(str(p) for p in found) or (spec.origin if spec else "nowhere")
        raise ImportError(f"lstm_xp needs its own package 'backends' ({ours}), but 'import "
                          f"backends' finds another one ({where}); rename that package or "
                          f"run from a directory that does not contain it")


_check_backends_is_ours()

from backends import BackendUnavailableError, get_backend, manual_seed  # noqa: E402

from .arrays import finite_checks, to_numpy  # noqa: E402
from .layers import Dropout, Embedding, Linear, MonotoneQuantiles  # noqa: E402
from .losses import CrossEntropyLoss, MSELoss, PinballLoss  # noqa: E402
from .lstm import LSTM  # noqa: E402
from .optim import SGD, Adam, AdamW, clip_grad_norm  # noqa: E402
from .rnn import RNN  # noqa: E402

__all__ = ["LSTM", "RNN", "Linear", "Embedding", "Dropout", "MonotoneQuantiles", "MSELoss",
           "CrossEntropyLoss", "PinballLoss", "SGD",
           "Adam", "AdamW", "clip_grad_norm", "BackendUnavailableError", "get_backend",
           "manual_seed", "to_numpy", "finite_checks"]
__version__ = "0.1.0"
