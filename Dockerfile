# syntax=docker/dockerfile:1
# shardbid container image.
#
# Build:  docker build -t shardbid .
#         docker build --build-arg PGO_PROFILE=target/pgo/merged.profdata -t shardbid .
#           (profile-guided; the profile from `bash loadtest/pgo-build.sh`, see README.md)
# Run:    docker run --rm -p 8080:8080 \
#           --ulimit memlock=-1 --ulimit nofile=1048576:1048576 \
#           --security-opt seccomp=/path/to/seccomp-with-io_uring.json \
#           shardbid
#
# Two things differ from an ordinary container:
# - io_uring: Docker's default seccomp profile blocks io_uring_setup, io_uring_enter and
#   io_uring_register. Use a profile that allows them (Docker's default profile with
#   those three syscalls added), or --security-opt seccomp=unconfined on a trusted host.
# - locked memory: each shard locks server.io_memory (2 MiB by default) plus about
#   1 MiB for its rings; --ulimit memlock=-1 (or a value above shards x 3 MiB) covers it.
# The admin listener (metrics, campaign changes) asks for no token unless one is set
# (admin.token, or SHARDBID_ADMIN_TOKEN), so the image keeps it on the container's
# loopback (127.0.0.1:9100) and does not expose it. Liveness and readiness (GET /healthz,
# GET /readyz) are on the traffic port, 8080. To scrape metrics, open the admin listener
# deliberately, only towards the monitoring network, and with a token (Prometheus sends
# it from a credentials file, see docs/operations.md):
#   docker run ... -e SHARDBID_ADMIN_TOKEN -e SHARDBID_ADMIN_LISTEN=0.0.0.0:9100 \
#                  -p 10.0.0.5:9100:9100 shardbid
#     (the token from the calling shell's environment; 10.0.0.5: the host's address on
#     the private monitoring network; with a bare -p 9100:9100 Docker publishes it on
#     every host address)
#   docker run --network host ... -e SHARDBID_ADMIN_LISTEN=10.0.0.5:9100 shardbid
#     (host networking: bind the monitoring address itself)
# With the first form, other containers on the same Docker network reach port 9100 too.
# See docs/deployment.md.
#
# shardbid_build_info and --version name the commit built; there is no .git in the
# build context, so pass it:  --build-arg SHARDBID_COMMIT=$(git rev-parse --short HEAD)

FROM rust:1.95-bookworm AS build
# A profile from `bash loadtest/pgo-build.sh` at the same commit, as a path in the build
# context (target/pgo/merged.profdata; .dockerignore lets that one file through), makes
# this a profile-guided build: 9-21% less CPU per request in the README's comparisons. The
# profile cannot be made here: training runs the server, and `docker build` does not
# allow io_uring. Without it, an ordinary release build.
ARG PGO_PROFILE=""
# Read by build.rs (RUN steps see build arguments as environment variables).
ARG SHARDBID_COMMIT=""
WORKDIR /src
COPY . .
# Out of target/ before the cache mount below covers that directory.
RUN if [ -n "$PGO_PROFILE" ]; then \
        test -f "/src/$PGO_PROFILE" || { echo "PGO_PROFILE: no file $PGO_PROFILE in the build context" >&2; exit 1; } ; \
        mkdir -p /pgo && cp "/src/$PGO_PROFILE" /pgo/merged.profdata ; \
    fi
# BuildKit cache mounts keep the registry and compiled dependencies between builds.
# .cargo/config.toml builds for x86-64-v3 (AVX2): every current server CPU has it; the
# profile flags join those flags (--config), they do not replace them.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    if [ -n "$PGO_PROFILE" ]; then \
        cargo build --release --locked -p shardbid --bin shardbid \
            --target x86_64-unknown-linux-gnu \
            --config "target.x86_64-unknown-linux-gnu.rustflags=['-Cprofile-use=/pgo/merged.profdata', '-Cllvm-args=-pgo-warn-missing-function=false']" \
        && cp target/x86_64-unknown-linux-gnu/release/shardbid /usr/local/bin/shardbid ; \
    else \
        cargo build --release --locked -p shardbid --bin shardbid \
        && cp target/release/shardbid /usr/local/bin/shardbid ; \
    fi

FROM debian:bookworm-slim
RUN useradd --system --no-create-home --shell /usr/sbin/nologin shardbid
COPY --from=build /usr/local/bin/shardbid /usr/local/bin/shardbid
COPY config /etc/shardbid
USER shardbid
# Admin API on loopback only, unexposed: see the header for opening it on purpose (with
# SHARDBID_ADMIN_TOKEN).
ENV SHARDBID_CONFIG=/etc/shardbid/shardbid.toml \
    SHARDBID_LISTEN=0.0.0.0:8080 \
    SHARDBID_ADMIN_LISTEN=127.0.0.1:9100
EXPOSE 8080
# Liveness: GET /healthz on 8080. Readiness: GET /readyz (503 while draining).
# SIGTERM drains in-flight requests (server.drain_timeout_ms) and exits 0.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/shardbid"]
