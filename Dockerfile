# syntax=docker/dockerfile:1
# fapi-gateway container image. Node 24 runs the TypeScript sources directly (type stripping);
# there is no build step beyond installing the locked production dependencies.
#   docker build -t fapi-gateway:0.1.0 --build-arg VERSION=0.1.0 --build-arg REVISION=$(git rev-parse HEAD) .
#   docker run --read-only --tmpfs /tmp -v "$PWD/deploy:/etc/fapi-gateway:ro" -p 8443:8443 fapi-gateway:0.1.0

# Build stage: the exact dependency tree of package-lock.json, then without the dev dependencies.
FROM node:24-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund \
 && npm prune --omit=dev --ignore-scripts --no-audit --no-fund \
 && npm cache clean --force
COPY src ./src

# Runtime stage: distroless Node 24 (no shell, no package manager), as the non-root user 65532.
FROM gcr.io/distroless/nodejs24-debian12:nonroot AS runtime
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG CREATED=unknown
LABEL org.opencontainers.image.title="fapi-gateway" \
      org.opencontainers.image.description="FAPI 2.0 enforcement gateway: mTLS, DPoP and certificate-bound tokens, replay detection and route policies in front of any HTTP API" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.source="https://github.com/fapi-gateway/fapi-gateway" \
      org.opencontainers.image.base.name="gcr.io/distroless/nodejs24-debian12:nonroot"
ENV NODE_ENV=production
WORKDIR /app
# Owned by root and read-only for the user: the process cannot change its own code. Nothing is
# written at run time; a read-only root filesystem with an empty /tmp is enough.
COPY --from=build --chown=0:0 /app/package.json ./package.json
COPY --from=build --chown=0:0 /app/node_modules ./node_modules
COPY --from=build --chown=0:0 /app/src ./src
USER 65532:65532
# 8443: partner-facing TLS; 9090: admin (health, readiness, metrics). Kubernetes probes check
# health, so the image has no HEALTHCHECK.
EXPOSE 8443 9090
# The distroless entrypoint is node.
CMD ["src/main.ts", "start", "--config", "/etc/fapi-gateway/gateway.yaml"]
