# Telemetry API. `make help` lists the targets.
SHELL := /bin/bash
GO ?= $(shell command -v go 2>/dev/null || echo /usr/local/go/bin/go)
export PATH := $(dir $(GO)):$(PATH)
BIN := $(CURDIR)/.bin
# The tests' process runs in a zone east of Greenwich with a half-hour offset and daylight saving time (and
# their clusters' sessions in another, internal/testdb), so that a time formatted or cut in the local zone fails them.
TEST_TZ ?= Australia/Adelaide
SQLC_VERSION := v1.31.1
SQLC := $(BIN)/sqlc-$(SQLC_VERSION)
STATICCHECK_VERSION := v0.8.2
SWAGGER_UI_VERSION := 5.35.0

# The database `make run`, `migrate` and `psql` use: DATABASE_URL when set,
# otherwise the local cluster under ./.data/pg (started on demand).
DB_URL = $${DATABASE_URL:-$$($(GO) run ./cmd/devdb start)}

.DEFAULT_GOAL := help
.PHONY: help run migrate serve build test generate openapi lint psql db-stop bench clean swagger-ui pg-bin wrk-bin psql-bin pgbench-bin pgbouncer-bin ui ui-screenshots ui-bench chromium-bin node-bin

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-15s %s\n", $$1, $$2}'

build: ## build the binary into .bin/telemetry
	$(GO) build -buildvcs=auto -o $(BIN)/telemetry ./cmd/telemetry

# `make run` serves on 127.0.0.1 only unless LISTEN_ADDR says otherwise: it
# turns the token endpoint on (anyone who reaches it gets a token). The
# database URL it prints has its password masked.
run: build pg-bin ## migrate, then serve on 127.0.0.1:8080 or LISTEN_ADDR (starts a local PostgreSQL under ./.data when DATABASE_URL is unset)
	@url="$(DB_URL)" && echo "database: $$(printf '%s' "$$url" | sed -E 's#^([a-z]+://[^:/@]*:)[^@]*@#\1***@#; s#([?&]password=)[^&]*#\1***#')" && \
	DATABASE_URL="$$url" $(BIN)/telemetry migrate && \
	if [ -z "$$JWT_SECRET$$JWT_SECRET_FILE" ]; then \
		mkdir -p .data && { [ -s .data/jwt-secret ] || (umask 077 && head -c 32 /dev/urandom | base64 > .data/jwt-secret); } && \
		export JWT_SECRET_FILE="$(CURDIR)/.data/jwt-secret"; fi && \
	DATABASE_URL="$$url" LISTEN_ADDR="$${LISTEN_ADDR:-127.0.0.1:8080}" ENABLE_TOKEN_ENDPOINT=true exec $(BIN)/telemetry serve

migrate: build ## apply pending migrations to the configured database
	@url="$(DB_URL)" && DATABASE_URL="$$url" $(BIN)/telemetry migrate

test: $(SQLC) pg-bin psql-bin pgbouncer-bin chromium-bin node-bin ## lint (vet, gofmt, staticcheck, sqlc diff) and run every test against a throwaway PostgreSQL (or TEST_DATABASE_URL)
	@$(MAKE) --no-print-directory lint
	SQLC=$(SQLC) TZ=$(TEST_TZ) $(GO) test -race -count=1 -timeout 20m ./...
	@# Say whether the TimescaleDB checks ran or were skipped (go test hides skips).
	@$(GO) test -count=1 -run 'TimescaleDB' -v ./internal/api | grep -E -- '--- (SKIP|PASS|FAIL)|SKIPPED|^(ok|FAIL)' || true

generate: $(SQLC) ## regenerate the sqlc code in internal/store/db
	$(SQLC) generate

openapi: ## regenerate openapi.yaml (OpenAPI 3.0.3) from the code, and the Go client generated from it
	$(GO) run ./cmd/telemetry openapi > openapi.yaml
	cd internal/apiclient && $(GO) generate .

lint: $(SQLC) ## go vet, gofmt, staticcheck, sqlc diff, and internal/api free of the database driver
	$(GO) vet ./...
	@deps=$$($(GO) list -deps ./internal/api | grep -E '^github.com/jackc/pgx|internal/store/(db|postgres)$$'); \
	  if [ -n "$$deps" ]; then echo "internal/api depends on the database:"; echo "$$deps"; exit 1; fi
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) ./...
	$(SQLC) diff

psql: ## open psql on the configured database
	@url="$(DB_URL)" && exec psql "$$url"

db-stop: ## stop the local PostgreSQL started by make run
	$(GO) run ./cmd/devdb stop

BENCH ?= .
bench: pg-bin wrk-bin pgbench-bin ## run the benchmarks (real server, durable PostgreSQL) and write docs/benchmarks.md; BENCH=regexp for a subset
	@mkdir -p $(BIN)
	set -o pipefail; TESTDB_DURABLE=1 $(GO) test -run '^$$' -bench '$(BENCH)' -benchtime 1x -timeout 120m ./internal/api | tee $(BIN)/bench.txt
	@{ echo "# Benchmark results"; echo; \
	  echo "Written by \`make bench\` on $$(date -u +%Y-%m-%dT%H:%MZ): $$(nproc) cores, $$(free -g | awk '/^Mem:/{print $$2}') GiB," \
	       "$$( (ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 | sed 's|$$|/postgres|' | xargs -r sh -c '$$0 --version') || echo PostgreSQL)" \
	       "with initdb defaults (fsync on), load generator on the same machine."; \
	  echo "Figures are per benchmark; \`ratio\` compares the API with the same work done straight against the database in the same run."; \
	  echo "See docs/flows-storage.md and each resource's doc for what the figures mean."; echo; \
	  echo '```'; grep -E '^(Benchmark|goos|goarch|cpu|pkg|    [a-z_]+_test.go|    mixed: )' $(BIN)/bench.txt; echo '```'; } > docs/benchmarks.md
	@echo "wrote docs/benchmarks.md"

clean: db-stop ## stop the local database and delete ./.data and ./.bin
	rm -rf .data $(BIN)

swagger-ui: ## refresh the embedded Swagger UI from the swagger-ui-dist npm package
	tmp=$$(mktemp -d) && cd $$tmp && npm pack swagger-ui-dist@$(SWAGGER_UI_VERSION) >/dev/null && tar xzf swagger-ui-dist-*.tgz && \
	cp package/swagger-ui-bundle.js package/swagger-ui.css package/LICENSE package/NOTICE package/favicon-32x32.png $(CURDIR)/internal/api/swaggerui/ && rm -rf $$tmp

ui: ## rebuild the dashboard bundle (internal/ui/dist) from internal/ui/web with the pinned esbuild (needs npm)
	cd internal/ui/web && npm ci --no-audit --no-fund && node build.mjs

ui-screenshots: chromium-bin pg-bin ## run the dashboard's browser tests and write each page to docs/ui/*.png
	UI_SCREENSHOTS=1 $(GO) test -count=1 -run '^TestDashboard$$' ./internal/api

ui-bench: chromium-bin pg-bin ## first render of each dashboard page with 10 M measurements stored (UI_BENCH_ROWS to change)
	TESTDB_DURABLE=1 UI_BENCH=1 $(GO) test -run '^$$' -bench '^BenchmarkDashboardFirstRender$$' -benchtime 1x -timeout 60m ./internal/api

# Headless Chromium for the dashboard's browser tests (internal/api/dashboard_test.go):
# Debian's chromium, installed when missing and we may (root). The tests fail
# without it, they do not skip.
chromium-bin:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || [ -n "$$CHROMIUM" ] || \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing chromium (apt-get install chromium) for the dashboard tests"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	else echo "chromium not found: install it (Debian: apt-get install chromium) or set CHROMIUM to a Chrome binary"; exit 1; fi

# The PostgreSQL server binaries (initdb, pg_ctl) for the throwaway and local
# clusters: found in /usr/lib/postgresql/*/bin or on PATH, else installed
# from Debian's packages when we may (root). Not needed with DATABASE_URL and
# TEST_DATABASE_URL pointing at a server.
pg-bin:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null 2>&1 || \
	[ -n "$$TEST_DATABASE_URL$$DATABASE_URL" ] || \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing the PostgreSQL server binaries (apt-get install postgresql)"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; \
	else echo "PostgreSQL server binaries (initdb, pg_ctl) not found: install them, or set DATABASE_URL / TEST_DATABASE_URL"; exit 1; fi

# psql runs docs/analysts.md's queries as a person would, and Debian's
# pgbouncer stands in front of the test cluster in the scale-out tests: both
# are installed when missing (those tests fail without them).
psql-bin:
	@command -v psql >/dev/null 2>&1 || \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing psql (apt-get install postgresql-client) for the analysts' queries test"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql-client >/dev/null; \
	else echo "psql not found: install postgresql-client"; exit 1; fi

# pgbench is BenchmarkDevicesTarget's baseline (one INSERT per transaction):
# Debian ships it with the server (/usr/lib/postgresql/N/bin, where the
# benchmark looks first) and as a wrapper on PATH; installed when missing.
pgbench-bin:
	@ls /usr/lib/postgresql/*/bin/pgbench >/dev/null 2>&1 || command -v pgbench >/dev/null 2>&1 || \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing pgbench (apt-get install postgresql) for the device metrics benchmark"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; \
	else echo "pgbench not found: install postgresql (BenchmarkDevicesTarget skips without it)"; fi

pgbouncer-bin:
	@command -v pgbouncer >/dev/null 2>&1 || [ -x /usr/sbin/pgbouncer ] || \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing pgbouncer (apt-get install pgbouncer) for the PgBouncer tests"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq pgbouncer >/dev/null; \
	else echo "pgbouncer not found: install the pgbouncer package"; exit 1; fi

# node and npm run the TypeScript client and Redocly checks (internal/apiclient/ts);
# without them (or with a node older than 20) those two tests skip and say so.
node-bin:
	@command -v npm >/dev/null 2>&1 || \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing node and npm (apt-get install nodejs npm) for the TypeScript client tests"; \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null; } || \
		echo "node could not be installed: the TypeScript client tests skip"; \
	else echo "npm not found: the TypeScript client tests skip (install nodejs 20+ and npm)"; fi

# wrk drives the HTTP benchmarks from outside the Go process when installed;
# without it they fall back to the Go client and say so: never fatal.
wrk-bin:
	@command -v wrk >/dev/null 2>&1 || \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing wrk (apt-get install wrk) for the HTTP benchmarks"; \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; } || \
		echo "wrk could not be installed: the benchmarks use the Go HTTP client"; \
	else echo "wrk not found: the benchmarks use the Go HTTP client (install the wrk package for steadier figures)"; fi

# sqlc is a Go module: built from source at a pinned version, never downloaded as a binary.
$(SQLC):
	@mkdir -p $(BIN)
	@echo "installing sqlc $(SQLC_VERSION) into .bin (a few minutes the first time)"
	GOBIN=$(BIN) $(GO) install github.com/sqlc-dev/sqlc/cmd/sqlc@$(SQLC_VERSION)
	mv $(BIN)/sqlc $(SQLC)
