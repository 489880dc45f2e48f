# Multi-stage build: a static musl binary on a distroless, non-root base,
# without the default `simulator` feature (no simulator, no web framework).
FROM rust:1.95-alpine AS build
RUN apk add --no-cache musl-dev
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src src
COPY benches benches
# The workspace needs its members' manifests; the simulator is not built.
COPY crates crates
RUN cargo build --release --locked --no-default-features \
 && strip target/release/offer-cancel-operator

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /src/target/release/offer-cancel-operator /offer-cancel-operator
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/offer-cancel-operator"]
CMD ["controller"]
