# syntax=docker/dockerfile:1
#
# The podsignal image: one static binary in an empty (scratch) image, non-root, no shell.
#
# Build everything from source (needs network to pull the Rust image and crates):
#   podman build -t localhost/podsignal:0.1.0 --target runtime .
#   docker build -t localhost/podsignal:0.1.0 --target runtime .
#
# Or package a static binary built on the host (as tests/e2e/run.sh does; nothing is pulled):
#   cargo static    # alias in .cargo/config.toml: the same flags as the `build` stage below
#   podman build -t localhost/podsignal:0.1.0 --target runtime \
#     --build-context build=target/x86_64-unknown-linux-gnu/release .
# --build-context build=DIR replaces the stage named `build` with DIR, so DIR must hold the
# binary at DIR/podsignal, exactly where the `build` stage leaves it.

# Stage `build`: compile a fully static podsignal. glibc's static libc (crt-static) is used
# rather than musl; podsignal resolves no host names (loopback IP literals and files only), so
# glibc's NSS, which a static binary cannot load, is never needed.
FROM docker.io/library/rust:1.89-bookworm AS build
WORKDIR /src
COPY . .
RUN RUSTFLAGS="-C target-feature=+crt-static" \
    cargo build --release --locked --target x86_64-unknown-linux-gnu --bin podsignal \
 && cp target/x86_64-unknown-linux-gnu/release/podsignal /podsignal \
 && /podsignal --version

# Stage `runtime`: nothing but the binary. 65532 is the conventional "nonroot" uid/gid
# (distroless); Kubernetes' runAsNonRoot can verify a numeric USER.
FROM scratch AS runtime
COPY --from=build --chmod=0755 /podsignal /usr/local/bin/podsignal
ENV PATH=/usr/local/bin \
    PODSIGNAL_DIR=/run/podsignal
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/podsignal"]
CMD ["--help"]
