# syntax=docker/dockerfile:1
# textdrop in one container: a builder stage with the Rust toolchain and a C compiler (no
# database client package: textdrop's drivers are pure Rust), and a small runtime stage with the
# binary and CA certificates. Templates and migrations are inside the binary. The workspace's
# session store crate (crates/) builds with it.
# Base images are ARGs whose defaults are the official images, so a build elsewhere needs no
# flags; scripts/container-test.sh points them at local stand-ins on a machine without a registry.
ARG RUST_IMAGE=rust:1-bookworm
ARG RUNTIME_IMAGE=debian:bookworm-slim

FROM ${RUST_IMAGE} AS builder
WORKDIR /build
# Dependencies first, in their own cached layer: the real manifest with a dummy app (the
# session store crate, crates/, is a workspace member the app depends on: built here too).
COPY Cargo.toml Cargo.lock build.rs ./
COPY crates crates
RUN mkdir -p src migrations migrations_mysql templates static \
    && echo 'fn main() {}' > src/main.rs \
    && touch src/lib.rs \
    && cargo build --release --locked \
    && rm -rf src
COPY src src
COPY migrations migrations
COPY migrations_mysql migrations_mysql
COPY templates templates
COPY static static
# touch: the copied sources may be older than the dummy build's artifacts.
RUN touch src/main.rs src/lib.rs \
    && cargo build --release --locked \
    && cp target/release/textdrop /usr/local/bin/textdrop

FROM ${RUNTIME_IMAGE}
# The CA certificates (TLS to the database checks them); then apt's lists and caches go, so the
# layer holds only the package whatever the base image's apt configuration.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && apt-get clean \
    && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/log/apt /var/log/dpkg.log \
    && groupadd --system --gid 10001 textdrop \
    && useradd --system --uid 10001 --gid 10001 --home-dir /data --shell /usr/sbin/nologin textdrop \
    && mkdir -p /data \
    && chown 10001:10001 /data
COPY --from=builder /usr/local/bin/textdrop /usr/local/bin/textdrop
# The unprivileged textdrop user, by number so any runtime can resolve it.
USER 10001:10001
WORKDIR /data
# Only what differs from textdrop's own defaults (src/config/vars.rs): listen on every
# interface and serve /metrics on its own port (publish 9464 only to the monitoring network;
# the public port 8080 never serves it). DATABASE_URL is left to its default,
# sqlite://textdrop.db, which is in the working directory, the /data volume: so DATABASE_URL or
# DATABASE_URL_FILE (a secret) can each be given alone.
ENV HOST=0.0.0.0 \
    METRICS_ADDR=0.0.0.0:9464
VOLUME ["/data"]
EXPOSE 8080 9464
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 CMD ["textdrop", "healthcheck"]
CMD ["textdrop", "serve"]
