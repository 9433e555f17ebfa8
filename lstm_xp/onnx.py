"""Export an LSTM (or a trained run's whole model) to ONNX, to run where lstm-xp is not.

    from lstm_xp.onnx import export
    export(lstm, "lstm.onnx")                                   # input "x"; outputs "y", "h_n", "c_n"
    export(lstm, "lstm.onnx", initial_state=True, lengths=True)  # adds "h0", "c0", "lengths"

    import onnxruntime as ort
    y, h_n, c_n = ort.InferenceSession("lstm.onnx").run(None, {"x": x})

Needs the ``onnx`` package (``pip install "lstm-xp[onnx]"``); nothing else in lstm-xp imports it.

The graph uses ONNX's standard ``LSTM`` operator (opset 17), one node per layer, chained.
ONNX keeps the gates in the order i, o, f, c where lstm-xp (and PyTorch) keep i, f, g, o, so
the (4H, ...) blocks are reordered; ``B`` is [b_ih, b_hh] reordered the same way (absent
with ``bias=False``); a bidirectional layer is one node with ``direction="bidirectional"``
whose output (T, 2, B, H) is transposed and reshaped to lstm-xp's (T, B, 2H), forward
direction first. ``lengths`` becomes ``sequence_lens`` (cast to int32), with lstm-xp's padded
semantics: zeros past each length, h_n/c_n at each sequence's last step, the reverse
direction starting there.

Inputs and outputs have exactly the shapes and layout of ``lstm.forward`` for *batched* input
(an ONNX graph has a fixed rank: run an unbatched (T, I) sequence as a batch of one),
time-major or ``batch_first`` as the layer, T and B dynamic, in the layer's dtype. The graph
is the eval-mode layer: dropout is left out. Options ONNX's LSTM cannot express
(``proj_size``) raise a ValueError naming the option.
"""

from __future__ import annotations

import numpy as np

from .lstm import LSTM, param_names

OPSET = 17
ONNX_GATE_ORDER = (0, 3, 1, 2)        # lstm-xp's i, f, g, o blocks, taken as ONNX's i, o, f, c


def _onnx():
    try:
        import onnx
    except ImportError:
        from backends import install_command
        raise ImportError(f"exporting to ONNX needs the onnx package: "
                          f"{install_command('onnx')}") from None
    return onnx


def check_exportable(lstm) -> None:
    """ValueError naming the first option of ``lstm`` that ONNX's LSTM cannot express."""
    if not isinstance(lstm, LSTM):
        raise TypeError(f"export takes an lstm_xp.LSTM, got {type(lstm).__name__}")
    if lstm.proj_size:
        raise ValueError(f"proj_size={lstm.proj_size}: ONNX's LSTM operator has no output "
                         "projection, so an LSTM with proj_size > 0 cannot be exported")
    if not lstm.cell.plain:
        raise ValueError(f"{', '.join(lstm.cell.active())}: the export writes ONNX's LSTM "
                         "operator, which has none of lstm-xp's cell variants, so this LSTM "
                         "cannot be exported")


class GraphBuilder:
    """Nodes, initializers and value names of one ONNX graph, with unique names."""

    def __init__(self, dtype):
        self.onnx = _onnx()
        self.np_dtype = np.dtype(dtype)
        self.elem = {np.dtype(np.float32): self.onnx.TensorProto.FLOAT,
                     np.dtype(np.float64): self.onnx.TensorProto.DOUBLE}[self.np_dtype]
        self.nodes, self.initializers, self.inputs, self.outputs = [], [], [], []
        self._count = 0

    def name(self, stem: str) -> str:
        self._count += 1
        return f"{stem}_{self._count}"

    def const(self, stem: str, value) -> str:
        name = self.name(stem)
        self.initializers.append(self.onnx.numpy_helper.from_array(np.asarray(value), name))
        return name

    def node(self, op: str, inputs, n_out: int = 1, outputs=None, **attrs):
        outputs = outputs or [self.name(op.lower()) for _ in range(n_out)]
        self.nodes.append(self.onnx.helper.make_node(op, list(inputs), list(outputs), **attrs))
        return outputs[0] if len(outputs) == 1 else outputs

    def input(self, name: str, dims, elem=None) -> str:
        self.inputs.append(self.onnx.helper.make_tensor_value_info(name, elem or self.elem, dims))
        return name

    def output(self, value: str, name: str, dims, elem=None) -> str:
        self.node("Identity", [value], outputs=[name])
        self.outputs.append(self.onnx.helper.make_tensor_value_info(name, elem or self.elem,
                                                                    dims))
        return name

    def save(self, path, graph_name: str, metadata: dict | None = None):
        """The checked ModelProto of the graph so far, written to ``path``."""
        model = self.model(graph_name, metadata)
        self.onnx.save(model, str(path))
        return model

    def model(self, graph_name: str, metadata: dict | None = None):
        onnx = self.onnx
        graph = onnx.helper.make_graph(self.nodes, graph_name, self.inputs, self.outputs,
                                       self.initializers)
        model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", OPSET)],
                                       producer_name="lstm-xp")
        for key, value in (metadata or {}).items():
            entry = model.metadata_props.add()
            entry.key, entry.value = key, str(value)
        onnx.checker.check_model(model)
        return model

    # ------------------------------------------------------------ common shapes
    def to_time_major(self, x: str) -> str:
        """(B, T, F) <-> (T, B, F)."""
        return self.node("Transpose", [x], perm=[1, 0, 2])

    def axes(self, *axes: int) -> str:
        return self.const("axes", np.array(axes, np.int64))

    def linear(self, x: str, linear) -> str:
        """x (..., F_in) @ weight^T + bias, for a lstm_xp Linear layer."""
        params = linear.state_dict()
        y = self.node("MatMul", [x, self.const("weight_t", params["weight"].T.astype(
            self.np_dtype))])
        if "bias" in params:
            y = self.node("Add", [y, self.const("bias", params["bias"].astype(self.np_dtype))])
        return y

    def slice0(self, value: str, lo: int, hi: int) -> str:
        """value[lo:hi] along axis 0."""
        return self.node("Slice", [value, self.const("lo", np.array([lo], np.int64)),
                                   self.const("hi", np.array([hi], np.int64)),
                                   self.const("axis", np.array([0], np.int64))])


def _gate_blocks(w: np.ndarray, H: int) -> np.ndarray:
    """(4H, ...) in lstm-xp's gate order -> the same blocks in ONNX's order."""
    return np.concatenate([w[g * H:(g + 1) * H] for g in ONNX_GATE_ORDER])


def add_lstm(g: GraphBuilder, lstm, x_tm: str, h0=None, c0=None, seq_lens=None):
    """Append ``lstm``'s layers to ``g`` reading the time-major (T, B, I) value ``x_tm``.

    h0, c0: (L*D, B, H) value names or None; seq_lens: an int32 (B,) value name or None.
    Returns the names of y (T, B, D*H), h_n and c_n (L*D, B, H).
    """
    check_exportable(lstm)
    params = lstm.state_dict()
    H, D = lstm.hidden_size, lstm.num_directions
    layer_in, h_parts, c_parts = x_tm, [], []
    for k in range(lstm.num_layers):
        names = [param_names(k, d) for d in range(D)]
        w = np.stack([_gate_blocks(params[n["w_ih"]], H) for n in names])
        r = np.stack([_gate_blocks(params[n["w_hh"]], H) for n in names])
        b = ""
        if lstm.bias:
            b = g.const(f"B_l{k}", np.stack([
                np.concatenate([_gate_blocks(params[n["b_ih"]], H),
                                _gate_blocks(params[n["b_hh"]], H)]) for n in names]
            ).astype(g.np_dtype))
        state = ["" if s is None else g.slice0(s, k * D, (k + 1) * D) for s in (h0, c0)]
        y, y_h, y_c = g.node(
            "LSTM", [layer_in, g.const(f"W_l{k}", w.astype(g.np_dtype)),
                     g.const(f"R_l{k}", r.astype(g.np_dtype)), b, seq_lens or "", *state],
            n_out=3, hidden_size=H, direction="bidirectional" if D == 2 else "forward")
        # (T, D, B, H) -> (T, B, D, H) -> (T, B, D*H): forward direction first
        layer_in = g.node("Reshape", [g.node("Transpose", [y], perm=[0, 2, 1, 3]),
                                      g.const("shape", np.array([0, 0, D * H], np.int64))])
        h_parts.append(y_h)
        c_parts.append(y_c)
    h_n = g.node("Concat", h_parts, axis=0) if len(h_parts) > 1 else h_parts[0]
    c_n = g.node("Concat", c_parts, axis=0) if len(c_parts) > 1 else c_parts[0]
    return layer_in, h_n, c_n


def export(lstm, path, *, initial_state: bool = False, lengths: bool = False):
    """Write ``lstm`` (eval mode) as an ONNX model to ``path`` and return the ModelProto.

    Graph inputs: "x" (T, B, I) -- (B, T, I) with batch_first --; with ``initial_state``
    also "h0", "c0" (L*D, B, H); with ``lengths`` also "lengths" (B,) int64 in [1, T].
    Outputs: "y" (T, B, D*H) -- (B, T, D*H) with batch_first --, "h_n", "c_n" (L*D, B, H).
    T and B are dynamic ("T", "B"). Batched input only (see the module docstring).

    Raises:
        ValueError: an option ONNX's LSTM cannot express (``proj_size``).
        ImportError: the onnx package is missing.
    """
    check_exportable(lstm)
    g = GraphBuilder(lstm.dtype_name)
    I, H, LD = lstm.input_size, lstm.hidden_size, lstm.num_layers * lstm.num_directions
    x = g.input("x", ["B", "T", I] if lstm.batch_first else ["T", "B", I])
    x_tm = g.to_time_major(x) if lstm.batch_first else x
    h0 = g.input("h0", [LD, "B", H]) if initial_state else None
    c0 = g.input("c0", [LD, "B", H]) if initial_state else None
    seq_lens = None
    if lengths:
        given = g.input("lengths", ["B"], g.onnx.TensorProto.INT64)
        seq_lens = g.node("Cast", [given], to=g.onnx.TensorProto.INT32)
    y, h_n, c_n = add_lstm(g, lstm, x_tm, h0, c0, seq_lens)
    y_dims = ["B", "T", lstm.num_directions * H] if lstm.batch_first else \
        ["T", "B", lstm.num_directions * H]
    g.output(g.to_time_major(y) if lstm.batch_first else y, "y", y_dims)
    g.output(h_n, "h_n", [LD, "B", H])
    g.output(c_n, "c_n", [LD, "B", H])
    return g.save(path, "lstm_xp_LSTM", {"producer": "lstm-xp", "layer": repr(lstm)})
