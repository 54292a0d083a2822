# Two commands do all set-up: `make demo` and `make test`. Each creates .venv by itself.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
# The CPU wheel on this machine kind; GPU users install fbgen into an env that already has CUDA torch.
TORCH_SPEC ?= torch==2.13.0

$(BIN)/fbgen: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/pip install -q "$(TORCH_SPEC)"
	$(BIN)/pip install -q -e ".[dev]" --config-settings editable_mode=compat  # a path entry, not an import hook: a folder named fbgen beside a script cannot shadow the package
	touch $@

.PHONY: install demo test lint farm-engines
install: $(BIN)/fbgen

demo: $(BIN)/fbgen
	$(BIN)/fbgen run configs/demo.yaml --out out/demo --sheet

test: $(BIN)/fbgen farm-engines
	HF_HUB_OFFLINE=1 OMP_NUM_THREADS=1 $(BIN)/python -m pytest -n auto  # pytest-xdist: a worker per core, one torch thread each
	$(BIN)/ruff check .

lint: $(BIN)/fbgen
	$(BIN)/ruff check .

# The farm tests run a real single-node SLURM (Debian's slurm-wlm + munge). As root with apt, install it; otherwise
# those tests skip and say why. The test fixtures start and stop their own daemons; nothing runs as a service.
farm-engines:
	@command -v slurmctld >/dev/null || [ "$$(id -u)" != 0 ] || ! command -v apt-get >/dev/null || \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge >/dev/null; } || \
	  echo "could not install slurm-wlm + munge: the SLURM tests will skip"
