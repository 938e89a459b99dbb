"""netx (lava-dl network exchange HDF5): export, import, round trip, and the imported
network simulated by the reference == by Lava on the same file."""
from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest

h5py = pytest.importorskip("h5py")

from conformance import random_input  # noqa: E402
from snncc.errors import BitWidthError, ModelLoadError  # noqa: E402
from snncc.frontends.netx import load_netx  # noqa: E402
from snncc.ir import serialize  # noqa: E402
from snncc.ir.graph import Graph  # noqa: E402
from snncc.ir.nodes import Add, Flatten, IntConv, IntDense, IntInput, IntLIF  # noqa: E402
from snncc.ir.verify import verify  # noqa: E402
from snncc.passes.lava import LAVA_PASSES  # noqa: E402
from snncc.reference.interpreter import run  # noqa: E402
from snncc.targets import get  # noqa: E402
from snncc.targets import netx  # noqa: E402

I64 = np.int64


def rw(rng, shape, bits=8):
    return rng.integers(-(1 << (bits - 1)), 1 << (bits - 1), shape).astype(I64)


def lif(vth, **kw):
    thr = np.array([vth << 6], I64)
    return IntLIF(threshold=thr, reset_value=thr.copy(), **kw)


def lowered(g: Graph) -> Graph:
    for fn, _ in LAVA_PASSES:
        g, _ = fn(g)
    verify(g, "int")
    return g


def chain_graph() -> Graph:
    rng = np.random.default_rng(0)
    g = Graph()
    g.meta.update(name="netx_chain", steps=4)
    x = g.add("x", IntInput(shape=(2, 7, 6), encoding="direct", bits=8, scale=1 / 255, source="input"))
    c = g.add("conv", IntConv(weight=rw(rng, (3, 2, 3, 3)), stride=(2, 1), padding=(1, 0), dilation=(1, 2),
                              scale=np.linspace(0.1, 0.3, 3), source="features.0"), [x])
    l1 = g.add("conv.lif", lif(2000, du=3000, dv=200, bias=np.array([64, -128, 6400], I64),
                                scale=np.array([0.5, 0.25, 0.125])), [c])
    f = g.add("flat", Flatten(), [l1])
    d = g.add("fc", IntDense(weight=rw(rng, (5, g.shapes()["flat"][0])), weight_exp=1, weight_bits=8), [f])
    l2 = g.add("fc.lif", lif(30, dv=4096, du=0), [d])
    d2 = g.add("fc2", IntDense(weight=rw(rng, (3, 5), 6), weight_bits=6, delay=3), [l2])
    ro = IntLIF(fires=False, threshold=np.zeros(1, I64), reset_value=np.zeros(1, I64), dv=0)
    g.outputs = [g.add("readout", ro, [d2])]
    return lowered(g)


def same_model(a: Graph, b: Graph, tmp_path) -> None:
    serialize.save(a, tmp_path / "a")
    serialize.save(b, tmp_path / "b")
    for f in ("model.json", "model.npz"):
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes(), f


def test_round_trip_is_identity(tmp_path):
    g = chain_graph()
    assert get("netx") is netx
    netx.emit(g, tmp_path / "n")
    same_model(g, load_netx(tmp_path / "n" / "network.net"), tmp_path)


def test_round_trip_with_input_neuron(tmp_path):
    rng = np.random.default_rng(1)
    g = Graph()
    g.meta.update(name="input_neuron", steps=3)
    x = g.add("x", IntInput(shape=(6,), encoding="spikes", bits=1))
    l0 = g.add("in.lif", lif(0, dv=0), [x])
    d = g.add("fc", IntDense(weight=rw(rng, (4, 6))), [l0])
    g.outputs = [g.add("out", lif(3, dv=100), [d])]
    g = lowered(g)
    netx.emit(g, tmp_path / "n")
    same_model(g, load_netx(tmp_path / "n" / "network.net"), tmp_path)


def test_emit_is_deterministic(tmp_path):
    g = chain_graph()
    a = netx.emit(g, tmp_path / "a")[0]
    b = netx.emit(g, tmp_path / "b")[0]
    assert a.read_bytes() == b.read_bytes()


def test_emit_refuses_what_netx_cannot_express(tmp_path):
    rng = np.random.default_rng(2)
    g = Graph()
    g.meta.update(steps=3)
    x = g.add("x", IntInput(shape=(4,), encoding="spikes"))
    a = g.add("a", IntDense(weight=rw(rng, (4, 4))), [x])
    b = g.add("b", IntDense(weight=rw(rng, (4, 4))), [x])
    s = g.add("sum", Add(), [a, b])
    g.outputs = [g.add("out", IntLIF(threshold=np.array([100], I64), reset="subtract"), [s])]
    with pytest.raises(BitWidthError) as e:
        netx.emit(lowered(g), tmp_path)
    text = str(e.value)
    assert "chain" in text


# ------------------------------------------------------------------ files as lava-dl writes them
def _s(h, key, value):
    h.create_dataset(key, (1,), "S10", [value.encode("ascii")])


def _layer(layers, i: int, kind: str, shape) -> "h5py.Group":
    """Layer i of a netx file: its group with type and shape."""
    h = layers.create_group(str(i))
    _s(h, "type", kind)
    h.create_dataset("shape", data=np.array(shape))
    return h


def _neuron(h, vth, idecay, vdecay):
    _s(h, "neuron/type", "CUBA")
    for k, v in (("vThMant", vth), ("iDecay", idecay), ("vDecay", vdecay), ("refDelay", 1), ("gradedSpike", 0)):
        h.create_dataset(f"neuron/{k}", data=v)


def slayer_file(path, delays=True):
    """What lava-dl's slayer exports: input, conv+CUBA, flatten, dense+CUBA with per-neuron
    delays, and a dense readout without neuron (netx's default integrator)."""
    rng = np.random.default_rng(3)
    with h5py.File(path, "w") as f:
        sim = f.create_group("simulation")
        sim.create_dataset("Ts", data=1)
        sim.create_dataset("tSample", data=5)
        L = f.create_group("layer")
        h = _layer(L, 0, "input", [2, 6, 6])
        h = _layer(L, 1, "conv", [4, 3, 6])
        h.create_dataset("weight", data=rw(rng, (4, 2, 3, 3)).astype(np.float32)[..., None])
        h.create_dataset("stride", data=np.array([2, 1]))
        h.create_dataset("padding", data=np.array([1, 1]))
        h.create_dataset("dilation", data=np.array([1, 1]))
        h.create_dataset("groups", data=1)
        h.create_dataset("bias", data=np.array([10, -20, 0, 5], np.float32))
        _neuron(h, 60, 1024, 128)
        h = _layer(L, 2, "flatten", [72])
        h = _layer(L, 3, "dense", [10])
        h.create_dataset("weight", data=rw(rng, (10, 72)).astype(np.float32) * 2)
        if delays:
            h.create_dataset("delay", data=np.array([0, 1, 3, 0, 1, 1, 0, 3, 3, 2], np.float32))
        _neuron(h, 20, 4096, 0)
        h = _layer(L, 4, "dense", [3])
        h.create_dataset("weight", data=rw(rng, (3, 10)).astype(np.float32))
    return path


def test_import_of_a_slayer_file_builds_the_lava_schedule(tmp_path):
    g = load_netx(slayer_file(tmp_path / "s.net"))
    assert g.meta["schedule"] == "lava" and g.meta["steps"] == 5
    assert g.node("layer1.conv").out_bits == 24 and g.node("layer1.conv").delay == 1
    parts = [n for n in g.of_kind("IntDense") if n.startswith("layer3.dense")]
    assert sorted(g.node(n).delay for n in parts) == [1, 2, 3, 4]  # 1 + each distinct delay
    assert g.node("layer3.fanin").kind == "Add"
    ro = g.node("layer4.neuron")
    assert not ro.fires and ro.du == 0 and ro.dv == 4096  # netx's default integrator
    conv_lif = g.node("layer1.neuron")
    assert conv_lif.du == 1024 and conv_lif.dv == 128 and conv_lif.threshold.tolist() == [60 << 6]
    assert conv_lif.bias.tolist() == [10 << 6, -20 << 6, 0, 5 << 6]


def test_imported_file_reference_equals_lava(tmp_path):
    pytest.importorskip("lava")
    path = slayer_file(tmp_path / "network.net")
    g = load_netx(path)
    x = random_input(g, 2, np.random.default_rng(4))
    ref = run(g, x, probe_state=True)
    got = netx.simulate(tmp_path, x, probe_state=True)
    assert sorted(got) == sorted(ref)
    for k in ref:
        np.testing.assert_array_equal(got[k], ref[k], err_msg=k)
    assert ref["layer3.neuron"].any()


# -------------------------------------------------------------------------- malformed files
def _edit(path, fn):
    with h5py.File(path, "a") as f:
        fn(f)
    return path


@pytest.mark.parametrize("mutate,match", [
    (lambda f: f.__delitem__("layer"), "no /layer group"),
    (lambda f: f["layer"].move("3", "7"), "groups 0..n-1"),
    (lambda f: (f["layer/1"].__delitem__("type"), _s(f["layer/1"], "type", "convT")), "'convT' layers are not supported: a transposed"),
    (lambda f: (f["layer/1"].__delitem__("type"), _s(f["layer/1"], "type", "mystery")), "unknown layer type"),
    (lambda f: (f["layer/3"].__delitem__("weight"),
                f["layer/3"].create_dataset("weight", data=np.zeros((10, 71)))), "does not read the 72 inputs"),
    (lambda f: f["layer/1"].__delitem__("weight"), "missing 'weight'"),
    (lambda f: (f["layer/1/neuron"].__delitem__("type"), _s(f["layer/1/neuron"], "type", "SDNN")),
     "only CUBA/LOIHI"),
    (lambda f: (f["layer/3"].__delitem__("weight"),
                f["layer/3"].create_dataset("weight", data=np.full((10, 72), 0.5))), "non-integer"),
    (lambda f: (f["layer/3"].__delitem__("delay"), f["layer/3"].create_dataset("delay", data=np.ones(7))),
     "delay of 7 values"),
    (lambda f: f["layer/1"].create_dataset("delay", data=np.ones(4)), "conv layer delays"),
    (lambda f: (f["layer/1"].__delitem__("bias"), f["layer/1"].create_dataset("bias", data=np.ones(5))),
     "bias of shape"),
])
def test_malformed_files_raise_model_load_error(tmp_path, mutate, match):
    path = _edit(slayer_file(tmp_path / "m.net"), mutate)
    with pytest.raises(ModelLoadError, match=match):
        load_netx(path)


def test_not_a_file_or_not_hdf5(tmp_path):
    with pytest.raises(ModelLoadError, match="not found"):
        load_netx(tmp_path / "nope.net")
    (tmp_path / "x.net").write_text("hello")
    with pytest.raises(ModelLoadError, match="not an HDF5"):
        load_netx(tmp_path / "x.net")


def test_reset_interval_staggers_one_step_per_neuron_layer(tmp_path):
    path = slayer_file(tmp_path / "s.net")
    g = load_netx(path, reset_interval=3, reset_offset=4)
    neurons = g.of_kind("IntLIF")
    # lava-dl: layer k gets LIFReset(reset_offset=4 + 1 + k), Lava's time_step = t + 1
    assert [(g.node(n).reset_interval, g.node(n).reset_offset) for n in neurons] == \
        [(3, (4 + k) % 3) for k in range(len(neurons))]
    plain = load_netx(path)
    assert all(plain.node(n).reset_interval == 0 for n in plain.of_kind("IntLIF"))


@pytest.mark.parametrize("kw,match", [
    (dict(reset_interval=0), "reset_interval=0: must be an integer >= 1"),
    (dict(reset_interval=4, reset_offset=-1), "reset_offset=-1"),
    (dict(reset_interval=2.5), "reset_interval=2.5"),
])
def test_bad_reset_arguments_are_refused(tmp_path, kw, match):
    with pytest.raises(ModelLoadError, match=match):
        load_netx(slayer_file(tmp_path / "s.net"), **kw)


def test_periodic_reset_reference_equals_lava(tmp_path):
    """Two samples streamed through one run of 2 x 6 steps with reset_interval 6 (the
    LIFReset path of the Lava target) match the reference on every value."""
    pytest.importorskip("lava")
    from snncc.targets import lava

    path = slayer_file(tmp_path / "network.net")
    g = load_netx(path, reset_interval=6, reset_offset=0)
    x = random_input(g, 1, np.random.default_rng(5))[:, :6]
    x = np.concatenate([x, x[:, ::-1]], axis=1)  # (1, 12, ...): two samples back to back
    ref = run(g, x, probe_state=True)
    free = run(load_netx(path), x, probe_state=True)
    assert not np.array_equal(ref["layer4.neuron/v"], free["layer4.neuron/v"])  # the resets matter
    lava.emit(g, tmp_path / "lava")
    text = (tmp_path / "lava" / "network.py").read_text()
    assert text.count("LIFReset(") == len(g.of_kind("IntLIF"))
    got = lava.simulate(tmp_path / "lava", x, probe_state=True)
    for k in ref:
        np.testing.assert_array_equal(got[k], ref[k], err_msg=k)


@pytest.mark.slow  # verify on every target: 8 s
def test_cli_compiles_a_netx_file_with_a_periodic_reset(tmp_path, capsys):
    from snncc.cli import main

    path = slayer_file(tmp_path / "network.net")
    targets = "c,onnx,lava" if importlib.util.find_spec("lava") else "c,onnx"
    out = tmp_path / "b"
    assert main(["compile", str(path), "--target", targets, "--reset-interval", "3", "--reset-offset", "1",
                 "--out", str(out)]) == 0
    assert "reset every 3 steps" in capsys.readouterr().out
    x = random_input(load_netx(path), 2, np.random.default_rng(6))
    np.save(tmp_path / "x.npy", np.concatenate([x, x], axis=1))  # 10 steps: resets at 3, 6, 9 (+ layer)
    assert main(["verify", str(out), "--input", str(tmp_path / "x.npy"), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["match"] and sorted(report["targets"]) == sorted(targets.split(","))
    assert main(["inspect", str(out)]) == 0
    assert "u=v=0 at t%3==1" in capsys.readouterr().out


def test_round_trip_keeps_the_periodic_reset(tmp_path):
    g = chain_graph()
    n = g.of_kind("IntLIF")
    for k, name in enumerate(n):
        g.set(name, g.node(name).replace(reset_interval=5, reset_offset=(3 + k) % 5))
    path = netx.emit(g, tmp_path / "n")[0]
    with h5py.File(path, "r") as f:
        assert "reset_interval=5, reset_offset=3" in f.attrs["snncc_note"]
    same_model(g, load_netx(path), tmp_path)
    # netx's own arguments win over the recorded ones
    assert {load_netx(path, reset_interval=7).node(m).reset_interval for m in n} == {7}


def test_export_refuses_resets_netx_cannot_stagger(tmp_path):
    g = chain_graph()
    n = g.of_kind("IntLIF")
    for name in n:
        g.set(name, g.node(name).replace(reset_interval=5, reset_offset=2))
    with pytest.raises(BitWidthError, match="one-step-per-layer stagger"):
        netx.emit(g, tmp_path / "a")
    g.set(n[0], g.node(n[0]).replace(reset_interval=4))
    with pytest.raises(BitWidthError, match="one reset_interval to every layer"):
        netx.emit(g, tmp_path / "b")


def test_snncc_metadata_cannot_change_the_meaning(tmp_path):
    g = chain_graph()
    path = netx.emit(g, tmp_path)[0]

    def lie(f):
        import json
        m = json.loads(f["layer/1"].attrs["snncc_json"])
        m["neuron"]["snncc_threshold"] = [12345]
        f["layer/1"].attrs["snncc_json"] = json.dumps(m)
    _edit(path, lie)
    with pytest.raises(ModelLoadError, match="contradicts the netx data"):
        load_netx(path)


# ------------------------------------------- issue 16: bias-driven input, pool, average layers
def image_file(path, average=True):
    """A netx image network as lava-dl's examples use it: an input layer whose neurons are
    driven by their bias (the image, set through net.in_layer.neuron.bias_mant; input
    transform weight 36, bias 34 as in lava-dl's tiny.net), conv + CUBA, pool + CUBA,
    flatten, dense with per-neuron delays + CUBA, and an 'average' readout over 2 groups."""
    rng = np.random.default_rng(16)
    with h5py.File(path, "w") as f:
        f.create_group("simulation").create_dataset("tSample", data=6)
        L = f.create_group("layer")
        h = _layer(L, 0, "input", [2, 8, 8])
        h.create_dataset("weight", data=np.float32(36))
        h.create_dataset("bias", data=np.float32(34))
        _neuron(h, 80, 1024, 256)  # iDecay: irrelevant, a bias-driven input neuron has no a_in
        h = _layer(L, 1, "conv", [3, 8, 8])
        h.create_dataset("weight", data=rw(rng, (3, 2, 3, 3)).astype(np.float32)[..., None])
        for k, v in (("stride", [1, 1]), ("padding", [1, 1]), ("dilation", [1, 1])):
            h.create_dataset(k, data=np.array(v))
        h.create_dataset("groups", data=1)
        _neuron(h, 40, 2048, 512)
        h = L.create_group("2")
        _s(h, "type", "pool")  # as slayer's pool block writes it
        h.create_dataset("shape", data=np.array([3, 4, 4]))
        for k, v in (("kernelSize", [2, 2]), ("stride", [2, 2]), ("padding", [0, 0]), ("dilation", [1, 1])):
            h.create_dataset(k, data=np.array(v))
        h.create_dataset("weight", data=np.full((1, 1, 2, 2), 24, np.float32))
        _neuron(h, 30, 4096, 1024)
        h = _layer(L, 3, "flatten", [48])
        h = _layer(L, 4, "dense", [6])
        h.create_dataset("weight", data=rw(rng, (6, 48)).astype(np.float32) * 2)
        h.create_dataset("delay", data=np.array([0, 2, 1, 0, 2, 1], np.float32))
        _neuron(h, 20, 4096, 0)
        if average:
            h = _layer(L, 5, "average", [2])
    return path


def bias_input(g, n, rng):
    """Signed bias mantissas (an image through netx's input transform), static over time."""
    return rng.integers(-300, 300, (n,) + tuple(g.node(g.input_name).shape))


def test_bias_driven_input_pool_and_average_import(tmp_path):
    with pytest.warns(UserWarning, match="input transform"):
        g = load_netx(image_file(tmp_path / "i.net"), input_encoding="bias")
    inp = g.node(g.input_name)
    assert (inp.encoding, inp.bits) == ("bias", 13) and g.meta["netx_input_transform"] == {"weight": 36, "bias": 34}
    assert g.node("layer0.neuron").du == 4096  # u carries the bias x << 6, no memory
    pool = g.node("layer2.pool")
    assert pool.kind == "IntConv" and pool.groups == 3 and pool.weight.shape == (3, 1, 2, 2)
    assert (pool.weight == 24).all() and pool.stride == (2, 2)
    avg = g.node("layer5.average")
    assert avg.weight.tolist() == [[1] * 3 + [0] * 3, [0] * 3 + [1] * 3]
    ro = g.node("layer5.neuron")
    assert g.outputs == ["layer5.neuron"] and not ro.fires and (ro.du, ro.dv) == (0, 4096)
    x = bias_input(g, 2, np.random.default_rng(0))
    res = run(g, x, probe_state=True)
    assert res["layer0.neuron"].any() and res["layer4.neuron"].any()
    # --probe state: u of every neuron (Lava's schedule), du = 4096 ones included
    assert {k for k in res if k.endswith("/u")} == {f"{n}/u" for n in g.of_kind("IntLIF")}
    np.testing.assert_array_equal(res["layer0.neuron/u"], np.broadcast_to((x << 6)[:, None], res["layer0.neuron/u"].shape))
    # netx's input neuron: v = decay(v) + (x << 6), spikes at v > vth << 6
    v = np.zeros_like(x)
    for t in range(3):
        v = np.sign(v * (4096 - 256)) * (np.abs(v * (4096 - 256)) >> 12) + (x << 6)
        s = v > (80 << 6)
        np.testing.assert_array_equal(res["layer0.neuron"][:, t], s)
        v[s] = 0
    # the readout integrates each group's spikes
    counts = res["layer4.neuron"].reshape(2, 6, 2, 3).sum(-1).cumsum(1)
    np.testing.assert_array_equal(res["output"][:, 1:], counts[:, :-1] << 6)


@pytest.mark.slow  # every target, Lava included: 8 s
def test_bias_driven_netx_network_is_bit_exact_on_every_target(tmp_path):
    """The issue-16 network (bias-driven image input, pool, delays, average) compiled
    without editing the file and verified on reference, C, ONNX and Lava."""
    from snncc.builds import read_manifest
    from snncc.compiler import compile as do_compile
    from snncc.verify import verify_build

    targets = ["c", "onnx", "netx"] + (["lava"] if importlib.util.find_spec("lava") else [])
    path = image_file(tmp_path / "image.net")
    with pytest.warns(UserWarning, match="input transform"):
        b = do_compile(path, target=targets, out=tmp_path / "b", config={"input_encoding": "bias"})
    assert b.graph.node(b.graph.input_name).encoding == "bias"
    x = bias_input(b.graph, 2, np.random.default_rng(1))
    results, skipped = verify_build(tmp_path / "b", b.graph, read_manifest(tmp_path / "b"), x, progress=False)
    assert not skipped
    for t, r in results.items():
        assert r["match"], (t, r)
        assert not r["missing"], (t, r["missing"])


def test_cli_honours_the_input_encoding_of_a_netx_file(tmp_path, capsys):
    """--input-encoding is honoured for .net files (it was silently ignored), and
    `inspect` says which input the build takes."""
    import warnings

    from snncc.cli import main

    path = image_file(tmp_path / "i.net")
    for enc, want in (("bias", "bias 13-bit signed"), ("direct", "direct 8-bit"), (None, "spikes 1-bit")):
        out = tmp_path / (enc or "default")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            assert main(["compile", str(path), "--target", "onnx", "--out", str(out)]
                        + (["--input-encoding", enc] if enc else [])) == 0
        capsys.readouterr()
        assert main(["inspect", str(out)]) == 0
        assert want in capsys.readouterr().out
    x = bias_input(load_netx(path, input_encoding="bias"), 1, np.random.default_rng(2))
    np.save(tmp_path / "x.npy", x)
    assert main(["verify", str(tmp_path / "bias"), "--input", str(tmp_path / "x.npy"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["match"]


@pytest.mark.parametrize("reset_interval", [None, 3, 4])
def test_lava_runs_a_batch_in_one_network_where_the_schedule_allows(tmp_path, reset_interval):
    """One Lava network for the whole batch (state Vars set back between samples) gives
    the reference's result; a periodic reset that does not divide T falls back to one
    network per sample."""
    pytest.importorskip("lava")
    from snncc.targets import lava

    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        g = load_netx(image_file(tmp_path / "i.net"), input_encoding="bias", reset_interval=reset_interval)
    lava.emit(g, tmp_path / "lava")
    net = lava.load_network(tmp_path / "lava")
    assert net.NETWORK.batchable(6) == (reset_interval != 4)
    # the dense layer split by its 3 delay values is one DelayDense with a delay matrix
    assert (tmp_path / "lava" / "network.py").read_text().count("DelayDense(") == 1
    x = bias_input(g, 3, np.random.default_rng(5))
    ref = run(g, x, probe_state=True)
    got = net.run(x, probe_state=True)
    assert sorted(got) == sorted(ref)
    for k in ref:
        np.testing.assert_array_equal(got[k], ref[k], err_msg=k)


def test_verify_streams_samples_in_chunks(tmp_path):
    """verify with a budget of one sample per chunk gives the same comparison as in one
    piece, and a difference is reported at its sample in the whole input."""
    import warnings

    from snncc.builds import read_manifest
    from snncc.compiler import compile as do_compile
    from snncc.verify import Comparison, verify_build

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        b = do_compile(image_file(tmp_path / "i.net"), target=["onnx"], out=tmp_path / "b",
                       config={"input_encoding": "bias"})
    man = read_manifest(tmp_path / "b")
    x = bias_input(b.graph, 3, np.random.default_rng(3))
    whole, _ = verify_build(tmp_path / "b", b.graph, man, x, progress=False)
    chunked, _ = verify_build(tmp_path / "b", b.graph, man, x, progress=False, budget=1)
    assert whole == chunked and whole["onnx"]["match"]
    ref = run(b.graph, x)
    c = Comparison()
    for i in range(3):
        piece = {k: v[i:i + 1].copy() for k, v in ref.items()}
        if i == 2:
            piece["output"][0, 4, 1] += 1
        c.add({k: v[i:i + 1] for k, v in ref.items()}, piece, i)
    r = c.result()
    assert not r["match"] and r["layers"]["output"]["first_mismatch"]["index"] == [2, 4, 1]
    assert r["layers"]["output"]["steps_equal"] == r["layers"]["output"]["steps"] - 1
