# Depotix Ops. The two commands a newcomer needs: `make lab` and `make test`.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

VENV := $(CURDIR)/.venv
export PATH := $(VENV)/bin:$(PATH)
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
export DEPOTIX_SECRETS_DIR ?= $(CURDIR)/.lab-secrets
PYTEST := $(VENV)/bin/python -m pytest
# Each suite is its own pytest run: their conftest modules would clash in one.
UNIT_SUITES := tests/unit tests/lab tests/roles tests/security tests/backup tests/app tests/rollback

.PHONY: help bootstrap host engine images lab lab-down test lint unit molecule bench-migration bench-rollback bench-site bench-switch bench-backup bench-pitr clean

help: ## Show the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-16s %s\n", $$1, $$2}'

bootstrap: host $(VENV)/.installed engine ## Install what is missing: packages, .venv, the Docker engine

host:
	@lab/bootstrap/packages.sh

$(VENV)/.installed: requirements.txt lab/api/requirements.txt requirements.yml
	@lab/bootstrap/venv.sh

engine:
	@lab/bootstrap/engine.sh

# The image play itself skips images whose inputs did not change (a content-hash label);
# the stamp spares even that check when no input file is newer than the last build.
IMAGE_INPUTS := $(shell find lab/images lab/api lab/lab_vars.yml lab/playbooks/images.yml \
	lab/playbooks/tasks/build_image.yml lab/playbooks/tasks/wheelhouse.yml -type f \
	-not -path '*/wheels/*' -not -name '*.pyc' 2>/dev/null)

images: bootstrap .cache/images.stamp ## Build the lab images (only those whose inputs changed)

.cache/images.stamp: $(IMAGE_INPUTS)
	@ansible-playbook lab/playbooks/images.yml
	@mkdir -p .cache && touch $@

lab: images ## Start the lab server and deploy the stack into it (site.yml)
	@ansible-playbook lab/playbooks/up.yml
	@ansible-playbook site.yml
	@ansible-playbook lab/playbooks/seed.yml

lab-down: bootstrap ## Remove the lab server and its volumes
	@ansible-playbook lab/playbooks/down.yml

# The lint and the unit suites run beside the Molecule scenarios, at a lower priority
# (their output is kept in .cache/lint.log and .cache/unit.log and shown when all are
# done): the machine's cores are what the scenarios wait for, and the checks fill the
# gaps instead of adding their minutes in front.
test: images ## Every check: lint and the unit tests beside all Molecule scenarios
	@mkdir -p .cache; \
	nice -n 10 $(MAKE) --no-print-directory lint >.cache/lint.log 2>&1 & lint_pid=$$!; \
	nice -n 10 $(MAKE) --no-print-directory unit >.cache/unit.log 2>&1 & unit_pid=$$!; \
	molecule/run-all.sh && molecule_rc=0 || molecule_rc=$$?; \
	wait $$lint_pid && lint_rc=0 || lint_rc=$$?; \
	wait $$unit_pid && unit_rc=0 || unit_rc=$$?; \
	echo "---- lint (.cache/lint.log)"; cat .cache/lint.log; \
	echo "---- unit tests (.cache/unit.log)"; cat .cache/unit.log; \
	verdict() { [ "$$1" -eq 0 ] && echo passed || echo FAILED; }; \
	echo "test: lint $$(verdict $$lint_rc), unit tests $$(verdict $$unit_rc), molecule $$(verdict $$molecule_rc)"; \
	[ $$lint_rc -eq 0 ] && [ $$unit_rc -eq 0 ] && [ $$molecule_rc -eq 0 ]

lint: bootstrap ## yamllint, ansible-lint (production profile), secret scan
	yamllint --strict .
	ansible-lint --profile production
	detect-secrets-hook --baseline .secrets.baseline $$(git ls-files)

unit: bootstrap ## Unit tests: modules, scripts, role contracts, security, the reference API (real PostgreSQL)
	@rc=0; for suite in $(UNIT_SUITES); do \
	  [ -d $$suite ] || continue; echo "== $$suite"; $(PYTEST) -q $$suite || rc=1; \
	done; exit $$rc

molecule: images ## All Molecule scenarios (DEPOTIX_MOLECULE_JOBS at a time, default 2)
	molecule/run-all.sh

bench-migration: bootstrap ## Time django_migration state=query against a bare showmigrations (make lab first)
	bench/migration_query.py --server depotix-lab --runs 20

bench-rollback: bootstrap ## Time rollback.yml -e scenario=1 against the bare commands (make lab first)
	bench/rollback.py --server depotix-lab --rounds 5 --json bench/rollback_demo.json
	bench/rollback.py --server depotix-lab --rounds 3 --movements 1000000 --json bench/rollback_1m.json

bench-site: bootstrap ## Time five site.yml runs that change nothing, with their slowest tasks (make lab first)
	bench/site_nochange.py --runs 5 --json bench/site_nochange.json

bench-switch: bootstrap ## Failed requests and writer p99 during a switch, blue/green against in place (make lab first)
	bench/switch.py --server depotix-lab --rounds 3 --json bench/switch.json

bench-backup: images ## Time our backup and restore against bare pg_dump / pg_restore (1,000,000 movements)
	BENCH_REPEATS=7 bench/backup_restore.sh

bench-pitr: images ## Time restore.yml -e target=latest against a bare pgBackRest recovery, and the RPO after a kill
	bench/pitr.sh

clean: lab-down ## Remove the lab and the virtualenv
	rm -rf $(VENV) lab/api/wheels .cache
