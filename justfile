# Every recipe after set-up. `./dev <recipe>` installs first; `.venv/bin/just <recipe>` works too.

set shell := ["bash", "-euo", "pipefail", "-c"]
set positional-arguments := false

python := justfile_directory() / ".venv/bin/python"
export PATH := justfile_directory() / ".venv/bin:" + env_var("PATH")
export GATEWAY_PORT := env_var_or_default("GATEWAY_PORT", "8000")
export NATS_PORT := env_var_or_default("NATS_PORT", "4222")
export NATS_MONITOR_PORT := env_var_or_default("NATS_MONITOR_PORT", "8222")
export TRITON_GRPC_PORT := env_var_or_default("TRITON_GRPC_PORT", "8001")
export TRITON_HTTP_PORT := env_var_or_default("TRITON_HTTP_PORT", "8002")
export TRITON_METRICS_PORT := env_var_or_default("TRITON_METRICS_PORT", "8003")
local_nats := "nats://127.0.0.1:" + NATS_PORT
export GATEWAY_NATS_URL := env_var_or_default("GATEWAY_NATS_URL", local_nats)
export SCRAPER_NATS_URL := env_var_or_default("SCRAPER_NATS_URL", local_nats)
export RAG_NATS_URL := env_var_or_default("RAG_NATS_URL", local_nats)
export INFERENCE_NATS_URL := env_var_or_default("INFERENCE_NATS_URL", local_nats)
export INFERENCE_TRITON_GRPC_URL := env_var_or_default("INFERENCE_TRITON_GRPC_URL", "127.0.0.1:" + TRITON_GRPC_PORT)
export STATE_DIR := env_var_or_default("STATE_DIR", justfile_directory() / ".state")
export RAG_DATA_DIR := env_var_or_default("RAG_DATA_DIR", STATE_DIR / "rag")
export TORCHINDUCTOR_CACHE_DIR := env_var_or_default("TORCHINDUCTOR_CACHE_DIR", STATE_DIR / "torchinductor")

# List the recipes.
default:
    @just --list

# Run NATS, Triton (CPU) and the four services until Ctrl-C.
up:
    mkdir -p "$STATE_DIR/nats" "$STATE_DIR/triton" "$RAG_DATA_DIR"
    @echo "gateway: http://127.0.0.1:${GATEWAY_PORT}  (NATS 127.0.0.1:${NATS_PORT}, Triton gRPC 127.0.0.1:${TRITON_GRPC_PORT}; Ctrl-C stops all)"
    exec honcho --no-colour -f Procfile start

# Run the whole test suite (real nats-server and tritonserver are started by the tests).
test *args:
    deploy/dev/ensure-chromium.sh
    {{python}} -m pytest -p no:cacheprovider {{args}}

# ruff and mypy --strict.
lint:
    {{python}} -m ruff check .
    {{python}} -m ruff format --check .
    {{python}} -m mypy

# Benchmarks: `just bench` for all, or `just bench scraper|rag|inference|gateway|jobs|generator_quality`.
bench area="all":
    {{python}} -m bench {{area}}

# Write the AsyncAPI document of every service's subjects to docs/asyncapi/.
asyncapi:
    {{python}} -m deploy.asyncapi docs/asyncapi

# Print the main text of HTML files (.html or .html.gz) as one JSON object.
extract +files:
    {{python}} -m htmltext {{files}}

# Regenerate docs/settings.md (from the settings classes) and the AsyncAPI documents.
docs: asyncapi
    {{python}} -m deploy.settings_table --write docs/settings.md
