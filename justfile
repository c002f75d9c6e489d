# Every recipe after set-up. `./dev <recipe>` installs first; `.venv/bin/just <recipe>` works too.

set shell := ["bash", "-euo", "pipefail", "-c"]
set positional-arguments := false

python := justfile_directory() / ".venv/bin/python"
export PATH := justfile_directory() / ".venv/bin:" + env_var("PATH")
export GATEWAY_PORT := env_var_or_default("GATEWAY_PORT", "8000")

# List the recipes.
default:
    @just --list

# Run NATS, Triton (CPU) and the four services until Ctrl-C.
up:
    mkdir -p .state/nats .state/triton .state/rag
    @echo "gateway: http://127.0.0.1:${GATEWAY_PORT} (NATS nats://127.0.0.1:4222, Triton gRPC 127.0.0.1:8001)"
    exec honcho --no-colour -f Procfile start

# Run the whole test suite (real nats-server and tritonserver are started by the tests).
test *args:
    {{python}} -m pytest -p no:cacheprovider {{args}}

# ruff and mypy --strict.
lint:
    {{python}} -m ruff check .
    {{python}} -m mypy

# Benchmarks: `just bench` for all, or `just bench scraper|rag|inference|gateway|jobs`.
bench area="all":
    {{python}} -m bench {{area}}

# Write the AsyncAPI document of every service's subjects to docs/asyncapi/.
asyncapi:
    {{python}} -m runtime.asyncapi docs/asyncapi

# Print the main text of HTML files (.html or .html.gz) as one JSON object.
extract +files:
    {{python}} -m htmltext {{files}}
