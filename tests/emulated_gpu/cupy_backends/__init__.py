"""Stand-in for ``cupy_backends``: the CUDA library bindings, emulated."""
