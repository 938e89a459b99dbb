# snncc: two commands on a fresh machine (see README.md)
#   make demo   compile the shipped Fashion-MNIST SNN to C, simulate, verify, report
#   make test   run the test suite (the fast part; `make test-all` runs everything, as CI does)
# Both install what they need first (a virtual environment in .venv, the offline dataset).

VENV   ?= .venv
PY     := $(VENV)/bin/python
SNNCC  := $(VENV)/bin/snncc
EXAMPLE := examples/fashion_mnist
BUILD  ?= build/fashion_mnist

.PHONY: setup datasets toolchain-arm producers demo demo-lava demo-m4 test test-slow test-all clean

setup: $(VENV)/.installed

# torch first, pinned: pip then takes the CPU wheel that lies on disk instead of a
# multi-GB CUDA build. lava-nc 0.10.0 declares Requires-Python <3.11 but runs on 3.11
# with snncc's import shim (targets/lava/_shim.py): it alone is installed with
# --ignore-requires-python (and --no-deps, so the flag reaches no other package); the
# project install then resolves lava-nc's dependencies normally. setuptools warns on every
# editable install of a package-dir mapping (targets/, runtime/ -> snncc.targets,
# snncc.runtime, deliberate: pyproject.toml): that one warning is silenced by its text.
$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q --ignore-requires-python --no-deps lava-nc==0.10.0
	PYTHONWARNINGS='ignore:Editable installation' $(PY) -m pip install -q -e '.[dev,data,lava,onnx,nir]'
	touch $@

# Fashion-MNIST ships offline as a Debian package (dataset-fashion-mnist, the IDX files).
datasets:
	@test -f /usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz || \
	  { if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist; \
	    else sudo apt-get update -qq && sudo apt-get install -y -qq dataset-fashion-mnist; fi; }

# The Arm Cortex-M4 path of the C target (docs/c_runtime.md): cross compiler, newlib and
# QEMU, from Debian like the dataset. `snncc verify` runs the M4 build when they are there.
ARM_PKGS = gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm
toolchain-arm:
	@command -v arm-none-eabi-gcc >/dev/null && command -v qemu-system-arm >/dev/null && \
	  test -f /usr/lib/arm-none-eabi/newlib/thumb/v7e-m/nofp/librdimon.a || \
	  { if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq --no-install-recommends $(ARM_PKGS); \
	    else sudo apt-get update -qq && sudo apt-get install -y -qq --no-install-recommends $(ARM_PKGS); fi; }

demo: setup datasets
	$(SNNCC) compile $(EXAMPLE)/model.pt --target c --out $(BUILD)
	$(SNNCC) inspect $(BUILD)
	$(SNNCC) simulate $(BUILD) --target c --input $(EXAMPLE)/samples.npz --out $(BUILD)/result.npz
	$(SNNCC) verify $(BUILD) --input $(EXAMPLE)/samples.npz
	$(SNNCC) report $(BUILD) --input $(EXAMPLE)/samples.npz

# The example on an emulated Arm Cortex-M4 (512 KB flash / 160 KB RAM), bit-exact.
demo-m4: setup datasets toolchain-arm
	$(SNNCC) compile $(EXAMPLE)/model.pt --input-shape 1,28,28 --target c --out $(BUILD)
	$(SNNCC) simulate $(BUILD) --target c --arch cortex-m4 --input $(EXAMPLE)/samples.npz --out $(BUILD)/result_m4.npz
	$(SNNCC) verify $(BUILD) --input $(EXAMPLE)/samples.npz
	$(SNNCC) report $(BUILD) --input $(EXAMPLE)/samples.npz

# The same model through the Loihi 2 pipeline, simulated on Lava, and checked against the
# reference, the C runtime and onnxruntime.
demo-lava: setup datasets
	$(SNNCC) compile $(EXAMPLE)/model.pt --target lava,c,onnx --out $(BUILD)_lava
	$(SNNCC) simulate $(BUILD)_lava --target lava --input $(EXAMPLE)/samples.npz --out $(BUILD)_lava/result.npz
	$(SNNCC) verify $(BUILD)_lava --input $(EXAMPLE)/samples.npz

test: setup datasets toolchain-arm
	$(PY) -m pytest -m "not slow"

# Other tools' NIR exporters, for tests/test_nir_producers.py (test-only; docs/nir.md).
# sinabs 3.x pins nir<=1.0.4 and would pull samna (a PyPI stub that runs pip at import):
# it is installed without its dependencies, which are all present but pbr.
PRODUCERS = norse==1.1.0 rockpool==3.1.0 spikingjelly==2.0.0
producers: setup
	$(PY) -m pip install -q torch==2.13.0 numpy==1.26.4 nir==1.0.8 nirtorch==2.6 $(PRODUCERS)
	$(PY) -m pip install -q --no-deps sinabs==3.1.3 pbr==7.1.3

# The slow tests (NIR producers, long end-to-end runs): CI runs them after `make test`.
test-slow: setup datasets toolchain-arm producers
	$(PY) -m pytest -m slow

# Everything CI runs (.ci/run): the fast suite, then the slow one.
test-all: test test-slow

clean:
	rm -rf build
