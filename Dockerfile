# syntax=docker/dockerfile:1
# textdrop in one container. Base images are ARGs so a build elsewhere needs no flags, while a
# machine without registry access can point them at local stand-ins.
ARG RUST_IMAGE=rust:1-bookworm
ARG RUNTIME_IMAGE=debian:bookworm-slim

FROM ${RUST_IMAGE} AS builder
WORKDIR /build
# Dependencies first, in their own layer: a dummy crate with the real manifest.
COPY Cargo.toml Cargo.lock build.rs ./
RUN mkdir -p src migrations templates static \
    && echo 'fn main() {}' > src/main.rs && touch src/lib.rs \
    && cargo build --release --locked \
    && rm -rf src
COPY src src
COPY migrations migrations
COPY templates templates
COPY static static
RUN touch src/main.rs src/lib.rs && cargo build --release --locked

FROM ${RUNTIME_IMAGE}
RUN apt-get update \
    && apt-get install -y --no-install-recommends libpq5 ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /data --shell /usr/sbin/nologin textdrop \
    && mkdir -p /data && chown textdrop /data
COPY --from=builder /build/target/release/textdrop /usr/local/bin/textdrop
USER textdrop
WORKDIR /data
ENV HOST=0.0.0.0 PORT=8080 DATABASE_URL=sqlite:///data/textdrop.db RUST_LOG=info,actix_session=warn
VOLUME /data
EXPOSE 8080
CMD ["textdrop", "serve"]
