"""The snncc command line: compile, inspect, simulate, verify, report, eval."""
from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from pathlib import Path

import numpy as np

from ._version import __version__
from .errors import SnnccError, SnnccWarning
from .ops import input_range, role

class _Parser(argparse.ArgumentParser):
    """argparse that reports a usage mistake like every other error: one line, exit 2."""

    def error(self, message: str):  # type: ignore[override]
        print(f"{self.prog}: error: {message} (see {self.prog} --help)", file=sys.stderr)
        raise SystemExit(2)


def _flag(field: str) -> str:
    return "--" + field.replace("_", "-")


def _targets_arg(s: str) -> list[str]:
    return [t.strip() for t in s.split(",") if t.strip()]


def _compile_options(c: argparse.ArgumentParser) -> None:
    """The compile command's arguments: the frontends' options and the config schema's."""
    from .config import SPECS, CompileConfig
    from .frontends import FRONTENDS, all_options
    from .targets import DEFAULT_TARGETS, TARGETS

    c.add_argument("model", help="the model: " + "; ".join(
        f"{f.what} ({', '.join(f'*{x}' for x in f.suffixes) or 'any other file'})" for f in FRONTENDS))
    c.add_argument("--target", type=_targets_arg, default=None,
                   help=f"comma-separated targets: {', '.join(TARGETS)} (default {','.join(DEFAULT_TARGETS)})")
    c.add_argument("--out", default="build", help="build directory (default build/)")
    c.add_argument("--config", help="TOML file with compile options (flags override it)")
    for opt in all_options():  # each frontend's own options (snncc.frontends.FRONTENDS)
        if opt.flag:
            kw = {"action": "store_true"} if opt.type is None else {
                "type": int if opt.type is int else str, "metavar": opt.flag.lstrip("-").upper().replace("-", "_")}
            c.add_argument(opt.flag, dest=f"frontend_{opt.name}", help=opt.help, **kw)
    defaults = CompileConfig().to_dict()
    for field, spec in SPECS.items():  # every compile option (snncc.config.SPECS): same checks as the TOML file
        c.add_argument(_flag(field), dest=f"config_{field}", metavar=spec.type.__name__.upper(), default=None,
                       help=spec.describe(defaults[field]))
    c.add_argument("--bwr", action="store_true", help="block-wise learned weight rounding (SNNQ BWR; [bwr] mode "
                                                      "snn or ann)")
    c.add_argument("--prune", metavar="CRITERION[:RATIO]",
                   help="structured channel pruning before quantization (QP-SNN): svs, sca, l1 or random, "
                        "removing ceil(RATIO n) channels of each prunable layer (default ratio from [prune] or "
                        "0.5); e.g. svs:0.5")
    c.add_argument("--calib", help="calibration data NAME:N, the first N of the train split, for BWR, pruning and "
                                   "ANN conversion (default: the [bwr]/[prune]/[convert] table's calib, else "
                                   "fashion-mnist:1024, and fashion-mnist:256 for pruning)")
    c.add_argument("--dataset", help="the dataset the model takes: calibration images (NAME:N, N from the "
                                     "config, else 1024) and, without --input-shape, the input shape")
    c.add_argument("--bwr-iters", help="BWR iterations per block (default from [bwr] or 2000)")
    c.add_argument("--tnp", action="store_true", help="test-time neuron pruning (SNNQ TNP): --presim steps per "
                                                      "sample first (default 4), then T counted steps")


def _parser() -> argparse.ArgumentParser:
    from .targets import TARGETS

    p = _Parser(prog="snncc", description="Compile trained PyTorch SNNs to bit-exact integer models.")
    p.add_argument("--version", action="version", version=f"snncc {__version__}")
    common = argparse.ArgumentParser(add_help=False)  # every command's own -q / -v
    loud = common.add_mutually_exclusive_group()
    loud.add_argument("-q", "--quiet", action="store_true", help="no progress bars or notes: results and errors only")
    loud.add_argument("-v", "--verbose", action="store_true", help="also what each compiler pass did and its time")
    sub = p.add_subparsers(dest="cmd", required=True, parser_class=_Parser)

    def command(name: str, **kw) -> argparse.ArgumentParser:
        return sub.add_parser(name, parents=[common], **kw)

    _compile_options(command("compile", help="trace, quantize and emit a model"))

    i = command("inspect", help="the emitted integer model, layer by layer")
    i.add_argument("build")
    i.add_argument("--json", action="store_true")

    s = command("simulate", help="run a build on one target")
    s.add_argument("build")
    s.add_argument("--target", default="reference", help=f"reference, {', '.join(TARGETS)}")
    s.add_argument("--input", required=True, help="integer .npy (N,T,...) or (N,...); or .npz with key x")
    s.add_argument("--out", default="result.npz")
    s.add_argument("--probe", choices=["spikes", "state"], default="spikes")
    s.add_argument("--arch", default="host",
                   help="host (default), or a machine the target can also run on, emulated: the C "
                        "target's cortex-m4 (arm-none-eabi-gcc + qemu-system-arm; docs/c_runtime.md)")

    v = command("verify", help="every emitted target bit-exact against the reference")
    v.add_argument("build")
    v.add_argument("--input", help="integer .npy/.npz input (default: --dataset or random inputs)")
    v.add_argument("--dataset", help="NAME[:N] test images, e.g. fashion-mnist:8")
    v.add_argument("--target", type=_targets_arg, help="targets to check (default: those emitted)")
    v.add_argument("--json", action="store_true")

    r = command("report", help="memory, model size, SOPs, energy")
    r.add_argument("build")
    r.add_argument("--input")
    r.add_argument("--dataset", help="NAME[:N] test images to measure operations on")
    r.add_argument("--plot", metavar="DIR", help="also write PNG plots and report.html into DIR: spike rates over "
                   "time, weight codes per layer on their grid, memory and energy per layer, float vs integer "
                   "accuracy per step (with --dataset)")
    r.add_argument("--json", action="store_true")

    e = command("eval", help="accuracy of the float and the compiled integer model")
    e.add_argument("build")
    e.add_argument("--dataset", required=True, help="fashion-mnist, mnist5k or digits (test split); NAME:N for the first N")
    e.add_argument("--target", default="reference", help="reference (default) or an emitted target")
    e.add_argument("--batch", default="500", help="samples per batch (default 500)")
    e.add_argument("--json", action="store_true")

    t = command("train", help="quantization-aware training (SpQuant-SNN, QP-SNN) of a PyTorch model")
    t.add_argument("model", help="model .pt (a float model to fine-tune, or a fresh one)")
    t.add_argument("--config", help="TOML with [train], [quantization] and optionally [qpsnn] tables")
    t.add_argument("--dataset", required=True, help="dataset name (fashion-mnist, mnist5k, digits)")
    t.add_argument("--out", required=True, help="trained model .pt (beside it: .toml compile options, .json summary)")
    t.add_argument("--resume", action="store_true", help="continue from the last epoch's checkpoint")
    t.add_argument("--epochs", help="override [train] epochs")
    t.add_argument("--agreement", action="store_true",
                   help="compile the result and compare its predictions with the trained model's (test split)")
    t.add_argument("--arch", help="pkg.module:factory for a state_dict file")
    t.add_argument("--trust-pickle", action="store_true")
    return p


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    try:
        args, extra = parser.parse_known_args(argv)
        if extra:
            print(f"snncc {args.cmd}: error: unrecognized arguments: {' '.join(extra)} (see snncc {args.cmd} "
                  "--help)", file=sys.stderr)
            return 2
    except SystemExit as e:  # --help (0) or a usage error (2, already printed)
        return int(e.code or 0)
    def show(message, category, filename, lineno, file=None, line=None):  # one line per warning, no source
        print(f"snncc {args.cmd}: warning: {_indented(str(message))}", file=sys.stderr)

    from .progress import configure, log, set_quiet

    shown, warnings.showwarning = warnings.showwarning, show
    handler = configure(args.cmd, quiet=args.quiet, verbose=args.verbose)
    try:
        return {"compile": cmd_compile, "inspect": cmd_inspect, "simulate": cmd_simulate,
                "verify": cmd_verify, "report": cmd_report, "eval": cmd_eval, "train": cmd_train}[args.cmd](args)
    except SnnccError as e:
        print(f"snncc {args.cmd}: error: {_indented(str(e))}", file=sys.stderr)
        return 2
    except OSError as e:  # a file the command cannot read or write
        if isinstance(e, BrokenPipeError):  # the reader went away (inspect --json | head)
            _silence_stdout()
            return 1
        where = f": {e.filename}" if getattr(e, "filename", None) else ""
        print(f"snncc {args.cmd}: error: {e.strerror or e}{where}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    finally:
        warnings.showwarning = shown
        log.removeHandler(handler)
        set_quiet(False)


def _indented(text: str) -> str:
    """One error line, every further line indented (lists, compiler output, advice)."""
    first, *rest = text.rstrip("\n").split("\n")
    return "\n".join([first] + [r if r.startswith((" ", "\t")) else "  " + r for r in rest])


def _silence_stdout() -> None:
    import os

    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())


def int_arg(text: str, flag: str, lo: int = 1) -> int:
    """A command-line integer with a lower bound, checked like the config's."""
    from .config import Spec

    v = Spec(int, flag, lo).parse(flag, text)
    if v < lo:
        raise SnnccError(f"{flag} {v}: must be >= {lo}")
    return v


# ------------------------------------------------------------------------------ commands
def cmd_compile(args) -> int:
    from .compiler import compile as do_compile
    from .targets import DEFAULT_TARGETS

    from .conversion.options import conversion_options, dataset_options

    bwr, prune = _bwr(args), _prune(args)
    if args.calib is not None and bwr is None and prune is None and not args.frontend_convert:
        raise SnnccError("--calib gives calibration data for BWR, pruning or ANN conversion, but none of them is "
                         "on: add --bwr, --prune or --convert")
    targets = DEFAULT_TARGETS if args.target is None else args.target
    opts = {**frontend_options(args), **dataset_options(args), **conversion_options(args)}  # + ANN conversion
    with warnings.catch_warnings():  # snncc's own warnings are printed below, once, as notes
        warnings.simplefilter("ignore", SnnccWarning)
        b = do_compile(args.model, target=targets, out=args.out, config=read_config(args), bwr=bwr,
                       prune=prune, **opts)
    from .progress import log

    for note in b.notes:
        log.info(note)
    print(f"compiled {args.model} -> {b.path}/ ({summary(b)}); targets: {', '.join(b.targets)}")
    for t, notes in target_notes(b.graph, b.targets).items():
        print(f"{t.notes_title} notes ({len(notes)}" + (f"; {t.notes_hint}" if t.notes_hint else "") + "):")
        print("\n".join(f"  - [{kind}] {msg}" for kind, msg in notes))
    return 0


def _bwr(args) -> tuple | None:
    """(calibration images, BWRConfig) when BWR is on (--bwr, or enabled in [bwr])."""
    from .passes.bwr import BWRConfig

    from .conversion.options import calib_spec

    bc = BWRConfig.from_toml(args.config) if args.config else BWRConfig()
    if not (args.bwr or bc.enabled):
        if args.bwr_iters is not None:
            raise SnnccError("--bwr-iters sets a BWR option, but BWR is off: add --bwr")
        return None
    from .data import load_spec

    if args.bwr_iters is not None:
        bc = BWRConfig.from_dict({**bc.to_dict(), "iters": int_arg(args.bwr_iters, "--bwr-iters", 0)})
    return load_spec(calib_spec(args, bc.calib))[0], bc


def _prune(args) -> tuple | None:
    """(calibration images or None, PruneConfig) when pruning is on (--prune, or enabled in [prune])."""
    from .passes.prune import PruneConfig
    from .passes.prune.scores import DATA_CRITERIA

    pc = PruneConfig.from_toml(args.config) if args.config else PruneConfig()
    if args.prune is not None:
        pc = PruneConfig.from_flag(args.prune, pc)
    if not pc.enabled:
        return None
    if pc.criterion not in DATA_CRITERIA:
        return None, pc
    from .data import load_spec

    return load_spec(args.calib or pc.calib)[0], pc


def frontend_options(args) -> dict:
    """The frontend options given on the command line, converted by their option's type."""
    from .frontends import all_options

    out = {}
    for opt in all_options():
        val = getattr(args, f"frontend_{opt.name}", None)
        if opt.flag and val is not None and val is not False:
            try:
                out[opt.name] = opt.type(val) if opt.type not in (None, int, str) else val
            except ValueError:
                raise SnnccError(f"{opt.flag} {val!r}: not a {getattr(opt.type, '__name__', 'value')}") from None
    return out


def summary(b) -> str:
    """One line on what a build holds."""
    g = b.graph
    n_syn = sum(role(op) == "synapse" for _, op in g.items())
    n_neu = sum(role(op) == "neuron" for _, op in g.items())
    what = (f"{b.config.weight_bits}-bit weights, T={b.config.steps}" if b.float_graph is not None else
            f"integer import, {g.meta.get('steps')} steps per run")
    resets = {op.reset_interval for _, op in g.items() if role(op) == "neuron"}
    if len(resets) == 1 and 0 not in resets:
        what += f", reset every {resets.pop()} steps"
    return f"{n_syn} synapses, {n_neu} neuron layers, {what}"


def read_config(args) -> dict:
    """The compile options the user set: the config file's, overridden by flags (each
    flag's text read as its field's type; the values are checked by CompileConfig)."""
    from .config import SPECS, toml_table

    base = dict(toml_table(args.config, "quantization")) if args.config else {}
    for field, spec in SPECS.items():
        text = getattr(args, f"config_{field}", None)
        if text is not None:
            base[field] = spec.parse(_flag(field), text)
    if getattr(args, "tnp", False) and not base.get("presim"):  # --tnp: SRP's / SNNQ's 4 presimulation steps
        from .passes.tnp import DEFAULT_PRESIM

        base["presim"] = DEFAULT_PRESIM
    return base


def target_notes(graph, targets: list[str]) -> dict:
    """Non-blocking findings of each target (hardware limits, simulation-only parts)."""
    from .targets import spec

    out = {}
    for name in targets:
        t = spec(name)
        notes = t.notes(graph)
        if notes:
            out[t] = notes
    return out


def cmd_inspect(args) -> int:
    from .builds import load_build
    from .reports.inspect import format_inspect, inspect_rows

    g, manifest = load_build(args.build)
    rows = inspect_rows(g, manifest)
    if args.json:
        doc = {"layers": rows, "meta": g.meta, "outputs": g.outputs}
        if manifest.get("frontend_settings"):
            doc["frontend"] = {"name": manifest.get("frontend"), **manifest["frontend_settings"]}
        print(json.dumps(doc, indent=1, sort_keys=True))
    else:
        print(format_inspect(rows, g, manifest))
    return 0


def cmd_simulate(args) -> int:
    from .builds import arch_note, load_input, simulate_to_file

    x = load_input(args.input)
    shapes = simulate_to_file(args.build, args.target, x, args.out, probe_state=args.probe == "state",
                              arch=args.arch)
    on = args.target + (f" ({args.arch}, emulated)" if args.arch != "host" else "")
    print(f"simulated {x.shape[0]} sample(s) on {on}: {len(shapes)} arrays -> {args.out}")
    note = arch_note(args.build, args.target, args.arch)
    if note:
        print(note)
    return 0


def _chosen_input(args, graph) -> tuple[np.ndarray | None, str]:
    """The input batch of verify/report: --input or --dataset (test split), not both."""
    from .builds import load_input
    from .data import load_test_spec

    if args.input is not None and args.dataset is not None:
        raise SnnccError("give --input or --dataset, not both")
    if args.input is not None:
        return load_input(args.input), args.input
    if args.dataset is not None:
        return load_test_spec(args.dataset, graph.node(graph.input_name).shape)[1], args.dataset
    return None, ""


def _random_input(graph, n: int = 4, seed: int = 0) -> np.ndarray:
    inp = graph.node(graph.input_name)
    lo, hi = input_range(inp)
    rng = np.random.default_rng(seed)
    return rng.integers(lo, hi + 1, (n, int(graph.meta.get("steps", 1))) + tuple(inp.shape))


def cmd_verify(args) -> int:
    from .builds import load_build, user_files
    from .verify import format_comparison, verify_build

    g, manifest = load_build(args.build)
    x, desc = _chosen_input(args, g)
    if x is None:
        x, desc = _random_input(g), "4 random inputs (seed 0)"
    results, skipped = verify_build(args.build, g, manifest, x, args.target)
    ok = all(r["match"] for r in results.values())
    extra = user_files(args.build, manifest)
    if args.json:
        print(json.dumps({"input": desc, "match": ok, "targets": results, "skipped": skipped,
                          "not_in_build": extra}, indent=1, sort_keys=True))
    else:
        print(format_comparison(results, desc))
        if skipped:
            print(f"skipped {', '.join(skipped)}: float interchange format, not an integer target")
        for t, r in results.items():
            for label, why in r.get("not_run", {}).items():
                print(f"{t}: {label} not run: {why}")
        if extra:
            print(f"not part of the build (not checked, never run): {', '.join(extra)}")
    return 0 if ok else 1


def cmd_report(args) -> int:
    from .builds import load_build, target_dir
    from .reports.pruning import format_pruning, prune_report
    from .reports.report import build_report, format_report

    g, manifest = load_build(args.build)
    x, desc = _chosen_input(args, g)
    rep = build_report(g, x, desc)
    text = format_report(rep)
    pruned = prune_report(args.build, manifest, rep, x, desc)
    if pruned is not None:
        rep["pruning"] = pruned
        text += "\n" + format_pruning(pruned)
    from .targets import spec

    for t in manifest.get("targets", []):  # a target's own figures (C: sections, M4 flash/RAM)
        fn = getattr(spec(t).module, "report", None)
        if fn is not None:
            rep[f"{t}_target"], lines = fn(target_dir(args.build, manifest, t), rep["memory"], x)
            text += "\n" + "\n".join(lines)
    for t, notes in target_notes(g, manifest.get("targets", [])).items():
        rep[t.notes_key] = [{"kind": k, "note": m} for k, m in notes]
        text += f"\n{t.notes_title} ({t.name} target):\n" + "\n".join(f"  - [{k}] {m}" for k, m in notes)
    if args.plot is not None:
        from .reports.plots import write_plots

        labels = None
        if args.dataset is not None:
            from .data import load_test_spec

            labels = load_test_spec(args.dataset, g.node(g.input_name).shape)[2]
        files = write_plots(args.build, g, rep, args.plot, x, labels, desc)
        text += f"\nplots: {len(files) - 1} PNG(s) and {files[-1]}"
    print(json.dumps(rep, indent=1, sort_keys=True) if args.json else text)
    return 0


def cmd_eval(args) -> int:
    from .evaluate import evaluate

    res = evaluate(args.build, args.dataset, target=args.target, batch=int_arg(args.batch, "--batch"))
    if args.json:
        print(json.dumps(res, indent=1, sort_keys=True))
    else:
        lat = f", integer model runs {res['latency']} more steps of synapse latency" if res["latency"] else ""
        print(f"{res['dataset']} ({res['samples']} test samples, T={res['steps']}{lat}):")
        if res["float_accuracy"] is None:
            print(f"  integer model ({res['target']}) {100 * res['int_accuracy']:.2f} %  (no float model: integer import)")
        else:
            label = f"integer model ({res['target']})"
            print(f"  {'float model':<{len(label)}} {100 * res['float_accuracy']:6.2f} %\n"
                  f"  {label} {100 * res['int_accuracy']:6.2f} %  "
                  f"(delta {100 * (res['int_accuracy'] - res['float_accuracy']):+.2f} points)")
    return 0


def cmd_train(args) -> int:
    from .train.run import train_from_files

    epochs = int_arg(args.epochs, "--epochs", lo=0) if args.epochs is not None else None
    res = train_from_files(args.model, args.dataset, args.out, config=args.config, resume=args.resume,
                           epochs=epochs, agreement=args.agreement, arch=args.arch, trust_pickle=args.trust_pickle)
    if os.environ.get("RANK", "0") == "0":  # torchrun: one summary, from rank 0
        print(json.dumps({k: v for k, v in res.items() if not isinstance(v, (dict, list))}, indent=1, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
