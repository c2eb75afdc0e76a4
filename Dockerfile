# One image per service, from the one workspace:
#   docker build -t ghcr.io/crm-suite/contacts:dev .
#   docker build --build-arg SERVICE=sales -t ghcr.io/crm-suite/sales:dev .
# The binary is /usr/local/bin/service; `service migrate` runs the migrations
# and exits, plain `service` migrates if needed and serves.

FROM rust:1.95-bookworm AS builder
ARG SERVICE=contacts
WORKDIR /src
COPY . .
# Plain RUN (no BuildKit cache mounts) so the classic builder works too.
RUN cargo build --release --bin "$SERVICE" --locked \
 && install -D -m 0755 "target/release/$SERVICE" /out/service

# glibc and libgcc, CA certificates, no shell, user 65532 (nonroot).
FROM gcr.io/distroless/cc-debian12:nonroot
ARG SERVICE=contacts
LABEL org.opencontainers.image.title="crm-${SERVICE}" \
      org.opencontainers.image.description="CRM suite: the ${SERVICE} service" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=builder /out/service /usr/local/bin/service
USER 65532
ENTRYPOINT ["/usr/local/bin/service"]
