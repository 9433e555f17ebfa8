"""The emulated CuPy (tests/emulated_gpu) offers nothing the installed real CuPy lacks.

For each emulated module and class below: every name it exposes exists in real CuPy (a
stand-in may offer less, never more), and where both sides are Python callables with
inspectable signatures, each emulated parameter is accepted by the real one under the
same name and kind (or through real ``*args``/``**kwargs``), with the same default. So
code that runs on the emulator does not lean on an argument CuPy would refuse.

Both sides are read in subprocesses -- the emulator with tests/emulated_gpu first on the
path, real CuPy without it -- so neither shadows the other, here or in this process. Runs
in the normal test run; skips where real CuPy is not installed, and per module where the
real module cannot be imported on this machine (e.g. the cuBLAS binding needs libcublas).
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

EMULATOR = Path(__file__).resolve().parent / "emulated_gpu"
TARGETS = [
    "cupy", "cupy._core", "cupy._core._routines_linalg", "cupy.cuda", "cupy.cuda.compiler", "cupy.cuda.device",
    "cupy.cuda.memory", "cupy.cuda.runtime", "cupy.cuda.stream", "cupy.random", "cupy.linalg",
    "cupy.linalg._util", "cupy.cublas", "cupyx", "cupy_backends", "cupy_backends.cuda",
    "cupy_backends.cuda.libs", "cupy_backends.cuda.libs.cublas",
    "cupy:ndarray", "cupy:RawKernel", "cupy:RawModule", "cupy:ufunc", "cupy.cuda:Device",
    "cupy.cuda:Stream", "cupy.cuda:MemoryPointer", "cupy.cuda.compiler:CompileException",
    "cupy.random:Generator",
]
# names private to the emulator, which real CuPy cannot have
EMULATOR_ONLY = {
    "cupy": {"_emulator", "_NAMESPACE"},
    "cupy._core": {"_events"},
    "cupy._core._routines_linalg": {"_TYPES", "_kind", "_np"},
    "cupy.cuda.runtime": {"_device", "_events"},
    "cupy.cublas": {"_SOURCE", "_real_file"},
    "cupy:ndarray": {"_a", "_alloc", "_make", "_refuse"},
    "cupy.cuda:Device": {"_current"},
}

# Run in a subprocess with {target: names to look up, or None for all of dir()}; prints
# {target: {"error": ...} or {"members": {name: member}}}, where a member is {"module": full
# name} for a submodule, else {"signature": [[name, kind, default repr or None], ...], or
# None where inspect cannot tell}. Names that do not resolve are left out (real CuPy makes
# some attributes on first access, so the real side is asked for the emulator's names).
DUMP = r"""
import importlib, inspect, json, sys, types

def signature(obj):
    try:
        sig = inspect.signature(obj)
    except (TypeError, ValueError):
        return None
    return [[p.name, p.kind.name, None if p.default is p.empty else repr(p.default)]
            for p in sig.parameters.values()]

def resolves(obj, name):
    try:
        getattr(obj, name)
    except Exception:            # AttributeError, or a real module failing to load
        return False
    return True

def member(obj):
    if isinstance(obj, types.ModuleType):
        return {"module": obj.__name__}
    return {"signature": signature(obj) if callable(obj) else None}

targets, found = json.loads(sys.argv[1]), {}
for target in targets:                      # import everything first: submodules appear
    try:
        importlib.import_module(target.partition(":")[0])
    except ImportError as err:
        missing = isinstance(err, ModuleNotFoundError) and err.name == target.partition(":")[0]
        found[target] = {"error": f"{type(err).__name__}: {err}", "missing": missing}
for target in targets:
    if target in found:
        continue
    module_name, _, attr = target.partition(":")
    obj = importlib.import_module(module_name)
    if attr:
        if not hasattr(obj, attr):
            found[target] = {"error": f"no {attr} in {module_name}", "missing": True}
            continue
        obj = getattr(obj, attr)
    names = targets[target] or [n for n in dir(obj) if not n.startswith("__")]
    found[target] = {"members": {n: member(getattr(obj, n)) for n in names if resolves(obj, n)}}
found["cupy file"] = getattr(sys.modules.get("cupy"), "__file__", None)
print(json.dumps(found))
"""


def _python(script: str, with_emulator: bool, payload) -> dict:
    """Run ``script`` (with ``payload`` as JSON in argv[1]) in a fresh interpreter, with or
    without the emulator first on the path; its printed JSON."""
    env = dict(os.environ)
    paths = [p for p in env.get("PYTHONPATH", "").split(os.pathsep)
             if p and Path(p).resolve() != EMULATOR]
    env["PYTHONPATH"] = os.pathsep.join(([str(EMULATOR)] if with_emulator else []) + paths)
    done = subprocess.run([sys.executable, "-c", script, json.dumps(payload)], env=env,
                          capture_output=True, text=True, timeout=300, cwd=EMULATOR.parent)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.fixture(scope="module")
def surfaces():
    emulated = _python(DUMP, True, dict.fromkeys(TARGETS))
    real = _python(DUMP, False, {t: list(v.get("members", ())) for t, v in emulated.items()
                                 if t in TARGETS})
    if "error" in real["cupy"]:
        pytest.skip(f"real CuPy is not installed, nothing to compare the emulator with "
                    f"({real['cupy']['error']}); pip install cupy-cuda12x")
    assert Path(emulated["cupy file"]).resolve().is_relative_to(EMULATOR)
    assert not Path(real["cupy file"]).resolve().is_relative_to(EMULATOR)
    return emulated, real


def _accepts(real: list, param: list) -> bool:
    """Whether a real signature accepts an emulated parameter [name, kind, default]."""
    name, kind, default = param
    by_name = {p[0]: p for p in real}
    kinds = {p[1] for p in real}
    if kind in ("VAR_POSITIONAL", "VAR_KEYWORD"):
        return kind in kinds
    if name in by_name:
        _, real_kind, real_default = by_name[name]
        return real_kind == kind and (default is None or real_default is None
                                      or default == real_default)
    needs = {"POSITIONAL_ONLY": {"VAR_POSITIONAL"}, "KEYWORD_ONLY": {"VAR_KEYWORD"},
             "POSITIONAL_OR_KEYWORD": {"VAR_POSITIONAL", "VAR_KEYWORD"}}[kind]
    return needs <= kinds


@pytest.mark.parametrize("target", TARGETS)
def test_emulated_names_and_signatures_exist_in_real_cupy(surfaces, target):
    emulated, real = surfaces
    assert "members" in emulated[target], emulated[target]["error"]
    if "error" in real[target]:
        assert not real[target]["missing"], f"real CuPy has no {target}"
        pytest.skip(f"real {target} cannot be imported here: {real[target]['error']}")
    problems = []
    for name, member in sorted(emulated[target]["members"].items()):
        if name in EMULATOR_ONLY.get(target, ()):
            continue
        if "module" in member:                      # compared as a target of its own
            if member["module"] not in TARGETS:
                problems.append(f"{name}: submodule {member['module']} is not in TARGETS")
            continue
        if name not in real[target]["members"]:
            problems.append(f"{name}: not in real {target}")
            continue
        ours, theirs = member["signature"], real[target]["members"][name].get("signature")
        if ours is not None and theirs is not None:
            extra = [p for p in ours if not _accepts(theirs, p)]
            if extra:
                problems.append(f"{name}: real CuPy does not take {extra} (real: {theirs})")
    assert not problems, "\n".join(problems)


def test_allow_list_names_only_what_the_emulator_has(surfaces):
    """EMULATOR_ONLY cannot hide a name that no longer exists (it would go stale)."""
    emulated, _ = surfaces
    members = {t: set(v.get("members", {})) for t, v in emulated.items() if isinstance(v, dict)}
    for target, names in EMULATOR_ONLY.items():
        stale = names - members[target] - {"_emulator"}    # _emulator: present once imported
        assert not stale, f"{target}: {stale}"


# Kernel arguments by value: the dtype each side passes for a value (or "TypeError").
SCALARS = ["True", "False", "0", "-3", "2 ** 63", "1.5", "2j", "numpy.int32(3)",
           "numpy.float32(2)", "numpy.uint8(1)", "numpy.bool_(True)", "numpy.float16(1)",
           "numpy.int64(-1)", "'text'", "[1]"]
MARSHAL = r"""
import json, sys, numpy
try:
    from _gpu_emulator.kernels import cupy_scalar
    convert = lambda value: cupy_scalar(value, "argument").dtype
except ImportError:                       # real CuPy: what RawKernel launches use
    from cupy._core._scalar import CScalar
    convert = lambda value: CScalar(value).dtype
found = {}
for expr in json.loads(sys.argv[1]):
    try:
        found[expr] = str(convert(eval(expr)))
    except TypeError:
        found[expr] = "TypeError"
print(json.dumps(found))
"""


def test_kernel_scalar_arguments_are_marshalled_as_real_cupy_does(surfaces):
    """The emulator passes each Python/NumPy scalar with the dtype the installed CuPy's
    own CScalar (cupy/_core/_scalar.pyx, what RawKernel launches use) gives it."""
    assert _python(MARSHAL, True, SCALARS) == _python(MARSHAL, False, SCALARS)


@pytest.mark.parametrize("target", ["cupy_backends.cuda.libs.cublas"])
def test_emulated_extension_names_are_in_the_real_compiled_module(surfaces, target):
    """Where the real module cannot be imported here (the cuBLAS binding needs libcublas, which
    the gpu-emulation extra does not install), its compiled file still names every function
    and constant it defines: each name the stand-in offers must appear in it."""
    import importlib.util
    emulated, _ = surfaces
    try:
        spec = importlib.util.find_spec(target)       # imports the parents, not the module
    except ImportError as err:
        pytest.skip(f"real CuPy is not installed ({err})")
    if spec is None or not spec.origin or not spec.origin.endswith(".so"):
        pytest.skip(f"no compiled real {target} to read")
    binary = Path(spec.origin).read_bytes()
    names = [n for n in emulated[target]["members"] if n not in EMULATOR_ONLY.get(target, ())
             and not n.startswith("__")]
    assert names
    missing = [n for n in names if n.encode() not in binary]
    assert not missing, f"not in {spec.origin}: {missing}"
