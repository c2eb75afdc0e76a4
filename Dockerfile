# One image per service, from the one workspace; SERVICE picks the binary:
#   docker build --build-arg SERVICE=contacts -t ghcr.io/crm-suite/contacts:dev .
#   docker build --build-arg SERVICE=sales    -t ghcr.io/crm-suite/sales:dev .
#   docker build --build-arg SERVICE=marketing -t ghcr.io/crm-suite/marketing:dev .
#   docker build --build-arg SERVICE=support  -t ghcr.io/crm-suite/support:dev .
#   docker build --build-arg SERVICE=reporting -t ghcr.io/crm-suite/reporting:dev .
#   docker build --build-arg SERVICE=gateway  -t ghcr.io/crm-suite/gateway:dev .
# The binary is /usr/local/bin/service; `service migrate` runs the migrations
# and exits, plain `service` migrates if needed and serves.
#
# Layers: the dependencies are compiled in their own layer from a recipe
# (cargo-chef) that holds only the manifests and Cargo.lock, so a change to
# our sources rebuilds our crates alone; a change to Cargo.lock or any
# Cargo.toml rebuilds the dependencies. Plain RUN (no BuildKit cache mounts),
# so the classic builder works too.

# The toolchain the workspace is tested with (see README), with cargo-chef.
FROM rust:1.95-bookworm AS chef
RUN cargo install cargo-chef --version 0.1.78 --locked \
 && rm -rf "$CARGO_HOME/registry"
WORKDIR /src

# The recipe: every manifest and the lock file, sources left out. Any source
# change re-runs this cheap step, but an unchanged recipe keeps the layer below.
FROM chef AS planner
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

FROM chef AS builder
ARG SERVICE=contacts
COPY --from=planner /src/recipe.json recipe.json
# The dependencies of this one binary, with the same package selection (and so
# the same features) as the build below; otherwise cargo would rebuild them.
RUN cargo chef cook --release --locked --bin "$SERVICE" --recipe-path recipe.json
COPY . .
RUN cargo build --release --locked --bin "$SERVICE" \
 && install -D -m 0755 "target/release/$SERVICE" /out/service

# glibc and libgcc, CA certificates, no shell, no package manager; runs as
# user 65532 (nonroot), as the Kubernetes manifests require (runAsNonRoot).
FROM gcr.io/distroless/cc-debian12:nonroot
ARG SERVICE=contacts
LABEL org.opencontainers.image.title="crm-${SERVICE}" \
      org.opencontainers.image.description="CRM suite: the ${SERVICE} service" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=builder /out/service /usr/local/bin/service
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/service"]
