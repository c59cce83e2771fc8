# Two commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
DEMO_SPEC := applications/HDS-2026-0042.yaml
DEMO_STATS_SPEC := applications/HDS-2026-0107.yaml

export DAGSTER_HOME ?= $(CURDIR)/dagster_home
export KUHR_PSEUDONYM_KEY_FILE ?= $(CURDIR)/keys/pseudonym.key
export KUHR_SIGNING_KEY_FILE ?= $(CURDIR)/keys/signing.pem
export KUHR_SOURCE ?= $(CURDIR)/data/sample
export KUHR_DELIVERIES ?= $(CURDIR)/deliveries
export KUHR_REVIEWERS ?= $(CURDIR)/keys/reviewers
export KUHR_POPULATION_KEY_FILE ?= $(CURDIR)/keys/population.sec
DEMO_REVIEWER := keys/demo-reviewer.key
export DAGSTER_DG_UPDATE_CHECK_ENABLED := 0

.PHONY: demo test lint typecheck pytest browser keys sample ui clean mutants

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

keys: $(BIN)/.installed
	@test -f $(KUHR_PSEUDONYM_KEY_FILE) || $(BIN)/kuhr-pipeline keys init
	@test -f $(KUHR_POPULATION_KEY_FILE) || $(BIN)/kuhr-pipeline keys population
	@test -f $(DEMO_REVIEWER) || $(BIN)/kuhr-pipeline keys reviewer demo-reviewer --out keys
	@mkdir -p $(KUHR_REVIEWERS) && cp keys/demo-reviewer.pub $(KUHR_REVIEWERS)/

sample: $(BIN)/.installed
	@test -d $(KUHR_SOURCE) || $(BIN)/kuhr-pipeline synth --out $(KUHR_SOURCE) --persons 5000 --from-year 2019 --to-year 2025 --seed 42

demo: keys sample
	$(BIN)/kuhr-pipeline check $(DEMO_SPEC)
	$(BIN)/kuhr-pipeline check $(DEMO_STATS_SPEC)
	@$(BIN)/kuhr-pipeline deliver --again -q $(DEMO_STATS_SPEC) > .prepared-statistics
	@$(BIN)/kuhr-pipeline deliver --again -q $(DEMO_SPEC) > .prepared-delivery
	@echo "Prepared (pending release): $$(cat .prepared-statistics) $$(cat .prepared-delivery)"
	@echo "Released by a second person (the demo reviewer):"
	$(BIN)/kuhr-pipeline release $$(cat .prepared-statistics) --key $(DEMO_REVIEWER) --note "demo" > .last-statistics
	$(BIN)/kuhr-pipeline release $$(cat .prepared-delivery) --key $(DEMO_REVIEWER) --note "demo" > .last-delivery
	@sed -i 's/^released: //' .last-statistics .last-delivery
	@echo
	@echo "Released:  $$(cat .last-delivery) (by demo-reviewer; see kuhr-pipeline history)"
	@echo "Verify it:   $(BIN)/kuhr-pipeline verify $$(cat .last-delivery) --signer-pub keys/signing.pub --reviewers keys/reviewers"
	@echo "Decrypt it:  $(BIN)/kuhr-pipeline decrypt $$(cat .last-delivery) --sk demo-keys/hds-2026-0042.sec --signer-pub keys/signing.pub --out decrypted/$$(basename $$(cat .last-delivery))"
	@echo "Statistics:  $$(cat .last-statistics) (decrypt with demo-keys/hds-2026-0107.sec)"
	@rm -f .last-delivery .last-statistics .prepared-delivery .prepared-statistics

lint: $(BIN)/.installed
	$(BIN)/ruff check kuhr_pipeline tests
	$(BIN)/ruff format --check kuhr_pipeline tests

typecheck: $(BIN)/.installed
	$(BIN)/mypy

# The browser test drives Debian's Chromium headless: installed here when the machine lacks it.
browser:
	@command -v chromium >/dev/null 2>&1 || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null)

pytest: $(BIN)/.installed browser
	$(BIN)/pytest -q

test: lint typecheck pytest

ui: keys sample
	$(BIN)/dagster dev -w workspace.yaml

clean:
	rm -rf deliveries decrypted dagster_home/storage dagster_home/staging dagster_home/history dagster_home/schedules dagster_home/logs dagster_home/audit-heads

# Mutation testing of the rule modules ([tool.mutmut] in pyproject.toml; dev/MUTATION.md). Not CI's:
# a few minutes on two cores.
mutants: $(BIN)/.installed
	$(BIN)/pip install --quiet "mutmut>=3.8,<4"
	rm -rf mutants
	$(BIN)/mutmut run --max-children 2
	$(BIN)/python dev/mutation_summary.py
