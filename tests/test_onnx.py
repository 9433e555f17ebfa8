"""ONNX export checked by onnxruntime (float32) and onnx's reference evaluator (float64), the
training job's models exported whole, and Keras weights in, against Keras' own test numbers."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from lstm_xp import LSTM
from lstm_xp.interop import from_keras

onnx = pytest.importorskip("onnx", reason="onnx is in the test extra")
ort = pytest.importorskip("onnxruntime", reason="onnxruntime is in the test extra")

from lstm_xp.job.export import export_run  # noqa: E402
from lstm_xp.onnx import OPSET, export  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def run_onnx(path, feeds, dtype):
    """float32 through onnxruntime; float64 through onnx's reference evaluator (onnxruntime
    has no float64 LSTM kernel)."""
    if dtype == "float32":
        return ort.InferenceSession(str(path)).run(None, feeds)
    from onnx.reference import ReferenceEvaluator
    return ReferenceEvaluator(str(path)).run(None, feeds)


GRID = [  # layers, bidirectional, batch_first, batch (None: unbatched), state, lengths
    (1, False, False, 3, False, None),
    (1, True, False, 2, True, None),
    (2, False, True, 4, True, [5, 1, 3, 2]),
    (2, True, True, 3, False, [1, 5, 4]),
    (3, True, False, 2, True, [2, 5]),
    (2, True, False, None, True, None),
    (1, False, True, None, False, None),
]


# float64 runs on onnx's reference evaluator, which ignores sequence_lens, and onnxruntime
# has no float64 LSTM: padded graphs are checked in float32 only (the float64 graph differs
# from the float32 one in its element types alone).
CASES = [(dtype, *case) for dtype in ("float32", "float64") for case in GRID
         if dtype == "float32" or case[-1] is None]


@pytest.mark.parametrize("dtype, layers, bi, bf, batch, state, lengths", CASES, ids=str)
def test_exported_layer_matches_forward(layers, bi, bf, batch, state, lengths, dtype, rng,
                                        tmp_path):
    lstm = LSTM(3, 4, num_layers=layers, bidirectional=bi, batch_first=bf, dtype=dtype, seed=1)
    T, D = 5, 2 if bi else 1
    B = batch or 1
    x = rng.standard_normal((T, 3) if batch is None else ((B, T, 3) if bf else (T, B, 3)))
    x = x.astype(dtype)
    h0 = rng.standard_normal((layers * D, B, 4)).astype(dtype) if state else None
    c0 = rng.standard_normal((layers * D, B, 4)).astype(dtype) if state else None
    path = tmp_path / "lstm.onnx"
    export(lstm, path, initial_state=state, lengths=lengths is not None)
    # an unbatched sequence runs as a batch of one
    batched = x[None] if (batch is None and bf) else (x[:, None] if batch is None else x)
    feeds = {"x": batched}
    if state:
        feeds.update(h0=h0, c0=c0)
    if lengths is not None:
        feeds["lengths"] = np.array(lengths, np.int64)
    y, h_n, c_n = run_onnx(path, feeds, dtype)
    if batch is None:
        want_y, (want_h, want_c) = lstm.forward(x, None if not state else (h0[:, 0], c0[:, 0]),
                                                train=False)
        y = y[0] if bf else y[:, 0]
        h_n, c_n = h_n[:, 0], c_n[:, 0]
    else:
        want_y, (want_h, want_c) = lstm.forward(x, (h0, c0) if state else None,
                                                lengths=lengths, train=False)
    tol = dict(rtol=1e-5, atol=1e-5) if dtype == "float32" else dict(rtol=1e-12, atol=1e-13)
    for got, want in ((y, want_y), (h_n, want_h), (c_n, want_c)):
        assert got.dtype == np.dtype(dtype) and got.shape == want.shape
        np.testing.assert_allclose(got, want, **tol)


def test_graph_interface_is_the_layers(tmp_path):
    lstm = LSTM(3, 4, num_layers=2, bidirectional=True, batch_first=True, bias=False,
                dropout=0.5)
    model = export(lstm, tmp_path / "a.onnx", lengths=True)
    assert model.opset_import[0].version == OPSET >= 14
    assert [i.name for i in model.graph.input] == ["x", "lengths"]
    assert [o.name for o in model.graph.output] == ["y", "h_n", "c_n"]
    dims = [[d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]
            for v in model.graph.input]
    assert dims == [["B", "T", 3], ["B"]]
    assert sum(n.op_type == "LSTM" for n in model.graph.node) == 2
    assert not any("Dropout" in n.op_type for n in model.graph.node)      # eval semantics
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 6, 3)).astype(np.float32)
    y = ort.InferenceSession(str(tmp_path / "a.onnx")).run(["y"], {"x": x, "lengths":
                                                                   np.array([6, 6])})[0]
    np.testing.assert_allclose(y, lstm.forward(x, train=False)[0], rtol=1e-5, atol=1e-6)
    export(LSTM(3, 4), tmp_path / "b.onnx", initial_state=True)         # each option alone


def test_options_onnx_cannot_express_are_named(tmp_path):
    with pytest.raises(ValueError, match=r"proj_size=2: ONNX's LSTM operator has no output "
                                         r"projection"):
        export(LSTM(3, 4, proj_size=2), tmp_path / "p.onnx")
    with pytest.raises(ValueError, match="layer_norm, zoneout: the export writes ONNX's LSTM"):
        export(LSTM(3, 4, layer_norm=True, zoneout=0.1), tmp_path / "v.onnx")
    with pytest.raises(TypeError, match="export takes an lstm_xp.LSTM"):
        export(object(), tmp_path / "q.onnx")


def test_exporting_without_onnx_says_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnx", None)
    with pytest.raises(ImportError, match=r'exporting to ONNX needs the onnx package: '
                                          r'pip install "\.\[onnx\]"'):
        monkeypatch.chdir(ROOT)
        export(LSTM(3, 4), tmp_path / "n.onnx")


# --------------------------------------------------------------- whole runs
TINY = {"seed": dict(epochs=1, hidden_size=8),
        "sunspots": dict(epochs=1, hidden_size=8, num_layers=2),
        "co2": dict(epochs=1, hidden_size=8, dtype="float64"),
        "chars": dict(epochs=1, hidden_size=16, batches_per_epoch=5, max_chars=20_000)}


@pytest.mark.parametrize("task", sorted(TINY))
def test_each_tasks_run_exports_whole(task, tmp_path):
    from lstm_xp.job.data import one_hot
    from lstm_xp.job.train import TrainConfig, load_run, train
    train(TrainConfig(task=task, **TINY[task]), tmp_path / "run", progress=False,
          echo=lambda *_: None)
    model_proto = export_run(tmp_path / "run", tmp_path / "run.onnx")
    meta = {p.key: p.value for p in model_proto.metadata_props}
    cfg, t, model = load_run(tmp_path / "run")
    assert meta["task"] == task and json.loads(meta["lstm_xp_config"])["task"] == task
    dtype = cfg.dtype
    if task == "chars":
        assert json.loads(meta["vocabulary"]) == t.vocab.chars
        ids = t._streams("test")[:, :40]
        got = run_onnx(tmp_path / "run.onnx", {"ids": ids}, dtype)[0]
        want, _ = model.forward(one_hot(ids, len(t.vocab), dtype), train=False)
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
        return
    assert int(meta["window"]) == t.window
    windows = t.split["test"].inputs
    got = run_onnx(tmp_path / "run.onnx", {"window": windows}, dtype)[0]
    assert got.dtype == np.float64
    np.testing.assert_allclose(got, t.predict(model, windows)[:, 0], rtol=1e-6)
    # the number predict.py --steps 1 prints: the forecast after the series' last window
    last = t.series.values[None, -t.window:]
    one_step = float(run_onnx(tmp_path / "run.onnx", {"window": last}, dtype)[0][0])
    assert f"{one_step:.6g}" == f"{t.forecast(model, 1)[0]:.6g}"


def test_export_script(tmp_path):
    import subprocess
    from lstm_xp.job.train import TrainConfig, train
    train(TrainConfig(task="seed", epochs=1, hidden_size=4), tmp_path / "run", progress=False,
          echo=lambda *_: None)
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "export.py"),
                           str(tmp_path / "run" / "checkpoint.npz"), str(tmp_path / "s.onnx")],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"wrote {tmp_path / 's.onnx'}: inputs window (B, 32); outputs forecast (B)\n"
    bad = subprocess.run([sys.executable, str(ROOT / "scripts" / "export.py"),
                          str(tmp_path / "none"), str(tmp_path / "t.onnx")],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and bad.stderr == f"error: no checkpoint at {tmp_path / 'none'}/checkpoint.npz\n"


# --------------------------------------------------------------------- Keras
# Expected outputs from Keras' own LSTM tests: keras-team/keras, keras/src/layers/rnn/
# lstm_test.py at commit 12ada9a35eedff1abd926690b58e1588ba1c4add (test_correctness,
# test_pass_initial_state, test_masking). Every layer there is built with constant
# initializers: kernel 0.01, recurrent_kernel 0.02, bias 0.03, except that Keras'
# default unit_forget_bias=True sets the forget gate's bias to 1.
def keras_weights(I, H, unit_forget_bias=True, use_bias=True):
    kernel, recurrent = np.full((I, 4 * H), 0.01), np.full((H, 4 * H), 0.02)
    bias = np.full(4 * H, 0.03)
    if unit_forget_bias:
        bias[H:2 * H] = 1.0
    return kernel, recurrent, bias if use_bias else None


@pytest.mark.parametrize("options, want", [
    (dict(), [0.6288687, 0.86899155, 0.9460773]),
    (dict(unit_forget_bias=False), [0.57019705, 0.8661914, 0.9459622]),
    (dict(use_bias=False), [0.54986924, 0.86226785, 0.9443936]),
], ids=["default", "unit_forget_bias=False", "use_bias=False"])
def test_keras_correctness_numbers(options, want):
    sequence = np.arange(72).reshape((3, 6, 4)).astype(np.float32)
    lstm = LSTM(4, 3, batch_first=True, bias=options.get("use_bias", True), seed=0)
    lstm.load_state_dict(from_keras(*keras_weights(4, 3, **options)))
    _, (h_n, _) = lstm.forward(sequence, train=False)
    np.testing.assert_allclose(h_n[-1], np.repeat(np.array(want)[:, None], 3, axis=1),
                               rtol=1e-5, atol=1e-5)


def test_keras_go_backwards_is_the_reverse_direction():
    sequence = np.arange(72).reshape((3, 6, 4)).astype(np.float32)
    want = np.repeat(np.array([0.35622165, 0.74789524, 0.8872726])[:, None], 3, axis=1)
    bi = LSTM(4, 3, batch_first=True, bidirectional=True, seed=0)
    weights = keras_weights(4, 3)
    bi.load_state_dict({**from_keras(*weights), **from_keras(*weights, reverse=True)})
    _, (h_n, _) = bi.forward(sequence, train=False)
    np.testing.assert_allclose(h_n[1], want, rtol=1e-5, atol=1e-5)


def test_keras_initial_state_numbers():
    sequence = np.arange(24).reshape((2, 4, 3)).astype(np.float32)
    state = np.arange(4).reshape((1, 2, 2)).astype(np.float32)
    lstm = LSTM(3, 2, batch_first=True, seed=0)
    lstm.load_state_dict(from_keras(*keras_weights(3, 2)))
    _, (h_n, _) = lstm.forward(sequence, (state, state), train=False)
    np.testing.assert_allclose(h_n[0], [[0.20574439, 0.3558822], [0.64930826, 0.66276]],
                               rtol=1e-5, atol=1e-5)
    reverse = sequence[:, ::-1].copy()               # go_backwards on a one-way layer
    _, (h_n, _) = lstm.forward(reverse, (state, state), train=False)
    np.testing.assert_allclose(h_n[0], [[0.13281618, 0.2790356], [0.5839337, 0.5992567]],
                               rtol=1e-5, atol=1e-5)


def test_keras_masking_numbers_are_padded_lengths():
    """Keras' mask [[T, T, T, F], [T, T, F, F]] is right-padding: lengths [3, 2]."""
    sequence = np.arange(24).reshape((2, 4, 3)).astype(np.float32)
    lstm = LSTM(3, 2, batch_first=True, seed=0)
    lstm.load_state_dict(from_keras(*keras_weights(3, 2)))
    y, (h_n, _) = lstm.forward(sequence, lengths=[3, 2], train=False)
    np.testing.assert_allclose(h_n[0], [[0.11755939] * 2, [0.28556206] * 2], rtol=1e-5,
                               atol=1e-5)
    # return_sequences with zero_output_for_mask=True
    np.testing.assert_allclose(y[0], [[0.01588910] * 2, [0.05552048] * 2, [0.11755939] * 2,
                                      [0.0] * 2], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(y[1], [[0.14185596] * 2, [0.28556206] * 2, [0.0] * 2,
                                      [0.0] * 2], rtol=1e-5, atol=1e-5)


def test_from_keras_checks_shapes_and_names_stacks():
    k, r, b = keras_weights(3, 2)
    stack = {**from_keras(k, r, b), **from_keras(np.full((2, 8), 0.1), r, b, layer=1)}
    lstm = LSTM(3, 2, num_layers=2)
    lstm.load_state_dict(stack)
    np.testing.assert_allclose(lstm.params["weight_ih_l1"], 0.1)
    with pytest.raises(ValueError, match=r"recurrent_kernel must have shape \(H, 4H\) = "
                                         r"\(2, 8\) to match kernel \(3, 8\), got \(3, 8\)"):
        from_keras(k, np.zeros((3, 8)), b)
    with pytest.raises(ValueError, match="kernel must be a 2-D array"):
        from_keras(np.zeros((3, 7)), r, b)
    with pytest.raises(ValueError, match=r"bias must have shape \(4H,\) = \(8,\)"):
        from_keras(k, r, np.zeros(4))
